"""LBFGS against torch.optim.LBFGS 2.13 on the problems of tests/lbfgs_problems.py: the
configurations, both runs, the measured agreement, and the golden file.

Used by ``tests/test_lbfgs.py`` (live, torch importable), ``tools/make_parity_golden.py``
(torch -> ``tests/data/parity_lbfgs.npz``) and ``test_lbfgs_muon_golden.py`` (fusedopt against
that file, no torch). The file keeps torch's parameters after each of the STEPS steps of every
problem x configuration x dtype (the problems are small: 250 KB of floats before compression),
and the initial parameters, so a changed problem is noticed.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from fusedopt.reference import lane_dot
from lbfgs_problems import PROBLEMS

from .cases import DATA_DIR

GOLDEN_PATH = DATA_DIR / "parity_lbfgs.npz"
STEPS = 25
DTYPES = ("float32", "float64")
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "strong_wolfe": {"line_search_fn": "strong_wolfe"},
    "short": {"max_iter": 4, "history_size": 3},
    "short-wolfe": {"max_iter": 4, "line_search_fn": "strong_wolfe", "history_size": 3},
    "lr-evals": {"lr": 0.5, "max_iter": 6, "max_eval": 5, "tolerance_change": 1e-6},
}
CASES = [(p, c, d) for p in PROBLEMS for c in CONFIGS for d in DTYPES]

# Measured largest relative difference of any parameter from torch's (as it is) over the
# 25 steps, on the FMA targets (torch's add_ fuses as they do), with a margin of 10x, on two CPUs
# (Zen 3 AVX2 and an AVX-512 Intel Xeon; fusedopt's dots have the same bits on both, torch's MKL
# dots do not). Where torch on those two CPUs parts from itself by more than from fusedopt, the
# bound is 10x torch's own difference (the 10-dim Rosenbrock: 4.3e-7 with strong Wolfe, 2.8e-8
# with a short history). Cases left out: fixed-step (no line search) L-BFGS on the 5- and 10-dim
# Rosenbrock, and most float32 Rosenbrock runs, are chaotic: a last-bit difference in a dot
# product changes later branches (the tolerance tests, the history update), so those runs agree
# only as far as both reach the minimum; so is logistic regression in float32 with a short
# history and strong Wolfe, where torch on the two CPUs ends 0.57% apart. test_lbfgs.py's bitwise
# test (torch given fusedopt's dot and NumPy's sum and sqrt) covers them.
CLOSE: dict[tuple[str, str, str], float] = {
    ("rosenbrock2", "default", "float64"): 0.0,
    ("rosenbrock2", "strong_wolfe", "float64"): 0.0,
    ("rosenbrock2", "default", "float32"): 0.0,
    ("rosenbrock5", "strong_wolfe", "float64"): 3e-8,
    ("rosenbrock5", "short-wolfe", "float64"): 4e-8,
    ("rosenbrock10", "strong_wolfe", "float64"): 5e-6,
    ("rosenbrock10", "short-wolfe", "float64"): 5e-7,
    ("logistic", "default", "float64"): 5e-14,
    ("logistic", "strong_wolfe", "float64"): 5e-14,
    ("logistic", "short-wolfe", "float64"): 5e-14,
    ("logistic", "default", "float32"): 2e-5,
    ("logistic", "strong_wolfe", "float32"): 2e-5,
    ("quadratic", "default", "float64"): 6e-11,
    ("quadratic", "strong_wolfe", "float64"): 6e-11,
    ("quadratic", "short-wolfe", "float64"): 5e-9,
}

Run = tuple[list[list[np.ndarray]], list[dict[str, Any]], list[list[float]]]  # params, state, points seen


def run_fusedopt(problem: str, dtype: type, config: dict[str, Any], steps: int = STEPS, backend: str = "native") -> Run:
    import fusedopt

    params, f = PROBLEMS[problem](dtype)
    opt = fusedopt.LBFGS(params, backend=backend, **config)
    seen: list[list[float]] = []

    def closure() -> tuple[Any, list[np.ndarray]]:
        seen.append(np.concatenate([p.ravel() for p in params]).tolist())
        return f(params)

    traj, states = [], []
    for _ in range(steps):
        opt.step(closure)
        traj.append([p.copy() for p in params])
        states.append(copy.deepcopy(opt.state.get(0, {})))
    return traj, states, seen


@contextlib.contextmanager
def numpy_reductions(torch: Any) -> Iterator[None]:
    """torch's dot computed as fusedopt's (its fixed order), full sum and sqrt by NumPy, for the block."""
    T = torch.Tensor
    saved = T.dot, T.sum, T.sqrt
    as_t = lambda v: torch.from_numpy(np.asarray(v))  # noqa: E731
    T.dot = lambda a, b: as_t(lane_dot(a.numpy(), b.numpy()))
    T.sum = lambda a, *args, **kw: saved[1](a, *args, **kw) if args or kw else as_t(np.sum(a.numpy()))
    T.sqrt = lambda a: as_t(np.sqrt(a.numpy()))
    try:
        yield
    finally:
        T.dot, T.sum, T.sqrt = saved


def run_torch(torch: Any, problem: str, dtype: type, config: dict[str, Any], steps: int = STEPS) -> Run:
    params, f = PROBLEMS[problem](dtype)
    tp = [torch.from_numpy(p.copy()).requires_grad_() for p in params]
    opt = torch.optim.LBFGS(tp, **config)
    seen: list[list[float]] = []

    def closure() -> Any:
        arrays = [p.detach().numpy() for p in tp]
        seen.append(np.concatenate([a.ravel() for a in arrays]).tolist())
        loss, grads = f(arrays)
        for p, g in zip(tp, grads):
            p.grad = torch.from_numpy(np.array(g))
        return torch.tensor(loss)

    traj, states = [], []
    for _ in range(steps):
        opt.step(closure)
        traj.append([p.detach().numpy().copy() for p in tp])
        st = opt.state[tp[0]]
        conv = lambda v: v.detach().numpy().copy() if isinstance(v, torch.Tensor) else v  # noqa: E731
        states.append({k: ([conv(x) for x in v] if isinstance(v, list) else conv(v)) for k, v in st.items() if k != "al"})
    return traj, states, seen


def worst_rel_diff(got: list[list[np.ndarray]], want: list[list[np.ndarray]]) -> float:
    """The largest relative difference of any parameter element over the run."""
    worst = 0.0
    for ps, qs in zip(got, want):
        for p, q in zip(ps, qs):
            q64 = np.asarray(q, np.float64)
            worst = max(worst, float(np.max(np.abs(p.astype(np.float64) - q64) / np.maximum(np.abs(q64), 1e-30))))
    return worst


def case_id(case: tuple[str, str, str]) -> str:
    return "-".join(case)


def golden_arrays(torch: Any) -> dict[str, np.ndarray]:
    """Per case: the initial parameters, torch's flat parameters after each step (STEPS x n),
    and its final ``func_evals`` and ``n_iter``."""
    out: dict[str, np.ndarray] = {"__meta__": np.array(json.dumps({"torch": torch.__version__, "steps": STEPS}))}
    for case in CASES:
        problem, config, dt = case
        dtype = getattr(np, dt)
        init, _ = PROBLEMS[problem](dtype)
        traj, states, _ = run_torch(torch, problem, dtype, CONFIGS[config])
        key = case_id(case)
        out[f"{key}/init"] = np.concatenate([p.reshape(-1) for p in init])
        out[f"{key}/params"] = np.stack([np.concatenate([p.reshape(-1) for p in ps]) for ps in traj])
        out[f"{key}/counts"] = np.array([states[-1]["func_evals"], states[-1]["n_iter"]], dtype=np.int64)
    return out

