"""The torch-parity matrix for row-sparse gradients (docs/sparse.md): SparseAdam, SGD and Adagrad
against torch 2.13 stepping sparse COO gradients, and Adam/AdamW's lazy step against torch's Adam
applied to the touched rows only (torch itself refuses sparse gradients for Adam).

Used by ``tools/make_parity_golden.py`` (torch -> ``tests/data/parity_sparse.npz``) and by
``test_sparse_parity.py`` (fusedopt, and torch live when importable). Inputs are regenerated from
seeds; the golden file keeps a CRC of them, so a change of the stream is noticed.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cases import DATA_DIR

GOLDEN_PATH = DATA_DIR / "parity_sparse.npz"
N_STEPS = 25
# Embedding-like tables: a 7-wide row (vector tails), a 33-wide one, a 1-d parameter (one value
# per index) and a 3-d one (rows of 2x5).
SHAPES: tuple[tuple[int, ...], ...] = ((24, 7), (9, 33), (16,), (4, 2, 5))
# The golden file keeps the snapshots after these steps (1-based; the live tests compare all 25).
GOLDEN_STEPS = (1, 5, 13, 25)
EMPTY_STEP = 4  # parameter 0 gets a gradient with no rows (its step still counts, as in torch)
NONE_STEP, NONE_PARAM = 6, 1  # parameter 1 gets no gradient at all


@dataclass(frozen=True)
class SparseCase:
    optimizer: str  # fusedopt class; torch's has the same name ("Adam"/"AdamW": the lazy step)
    config: tuple[tuple[str, Any], ...]
    dtype: str

    @property
    def id(self) -> str:
        cfg = ",".join(f"{k}={v}" for k, v in self.config) or "default"
        return f"{self.optimizer}[{cfg}]-{self.dtype}"

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.config)


_CONFIGS: dict[str, list[dict[str, Any]]] = {
    "SparseAdam": [{}, {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6}, {"lr": 0.01, "maximize": True}],
    "SGD": [{"lr": 0.1}, {"lr": 0.05, "maximize": True}],
    "Adagrad": [{"lr": 0.1}, {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-6},
                {"lr": 0.1, "maximize": True}],
    "Adam": [{"lr": 0.01}, {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1, "maximize": True}],
    "AdamW": [{"lr": 0.01, "weight_decay": 0.1}],
}
CASES = [SparseCase(o, tuple(sorted(c.items())), d) for o, cs in _CONFIGS.items() for c in cs for d in ("float32", "float64")]


def initial_params(dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(1234)
    return [rng.uniform(-1, 1, s).astype(dtype) for s in SHAPES]


def grad_stream(dtype: str) -> list[list[tuple[np.ndarray, np.ndarray] | None]]:
    """Per step, per parameter: (indices, rows) with repeats, unsorted, int64 or int32 by turns."""
    rng = np.random.default_rng(4321)
    stream = []
    for step in range(N_STEPS):
        row: list[tuple[np.ndarray, np.ndarray] | None] = []
        for i, shape in enumerate(SHAPES):
            n = 0 if (step == EMPTY_STEP and i == 0) else int(rng.integers(1, 2 * shape[0]))
            high = shape[0] // 2 + 1 if step % 3 == 0 else shape[0]  # some steps crowd into fewer rows
            idx = rng.integers(0, high, size=n)
            rows = rng.standard_normal((n, *shape[1:])).astype(dtype)
            row.append(None if (step == NONE_STEP and i == NONE_PARAM) else
                       (idx.astype(np.int32 if (step + i) % 2 else np.int64), rows))
        stream.append(row)
    return stream


def inputs_crc(dtype: str) -> int:
    crc = 0
    for p in initial_params(dtype):
        crc = zlib.crc32(p.tobytes(), crc)
    for row in grad_stream(dtype):
        for g in row:
            if g is not None:
                crc = zlib.crc32(g[0].tobytes() + g[1].tobytes(), crc)
    return crc


STATE_NAMES = {"SparseAdam": ("exp_avg", "exp_avg_sq"), "SGD": (), "Adagrad": ("sum",),
               "Adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), "AdamW": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}

Snapshot = dict[str, np.ndarray]  # "p{i}" and "p{i}.{state}" (and "p{i}.step") after a step


def run_torch(case: SparseCase) -> list[Snapshot]:
    import torch

    with torch.sparse.check_sparse_tensor_invariants():  # checked, and torch does not warn that they are not
        return _run_torch(torch, case)


def _run_torch(torch: Any, case: SparseCase) -> list[Snapshot]:
    params = [torch.tensor(p) for p in initial_params(case.dtype)]
    stream = grad_stream(case.dtype)
    shapes = [tuple(p.shape) for p in params]
    if case.optimizer in ("Adam", "AdamW"):
        return _run_torch_lazy_adam(case, params, stream)
    opt = getattr(torch.optim, case.optimizer)(params, **case.kwargs)
    snaps = []
    for row in stream:
        for p, g, shape in zip(params, row, shapes):
            p.grad = None if g is None else torch.sparse_coo_tensor(
                torch.from_numpy(g[0].astype(np.int64))[None], torch.from_numpy(g[1]), shape, check_invariants=True)
        opt.step()
        snap: Snapshot = {}
        for i, p in enumerate(params):
            snap[f"p{i}"] = p.detach().numpy().copy()
            for name, v in opt.state[p].items():
                snap[f"p{i}.{name}"] = np.array(float(v)) if name == "step" else v.numpy().copy()
        snaps.append(snap)
    return snaps


def _run_torch_lazy_adam(case: SparseCase, params: list[Any], stream: list[Any]) -> list[Snapshot]:
    """Lazy Adam, from torch's own Adam: each step, torch.optim.Adam's update (single-tensor path)
    on the touched rows of the coalesced gradient, gathered with their state and scattered back."""
    import torch
    from torch.optim.adam import adam

    kw = case.kwargs
    amsgrad = kw.get("amsgrad", False)
    beta1, beta2 = kw.get("betas", (0.9, 0.999))
    state: list[dict[str, Any]] = [{} for _ in params]
    snaps = []
    for row in stream:
        for p, g, st in zip(params, row, state):
            if g is None:
                continue
            if not st:
                st.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                if amsgrad:
                    st["max_exp_avg_sq"] = torch.zeros_like(p)
            sp = torch.sparse_coo_tensor(torch.from_numpy(g[0].astype(np.int64))[None], torch.from_numpy(g[1]),
                                         tuple(p.shape), check_invariants=True).coalesce()
            rows = sp._indices()[0]
            st["step"] += 1
            if rows.numel() == 0:
                continue
            names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
            pr = p[rows].clone()
            arrays = {n: st[n][rows].clone() for n in names}
            adam([pr], [sp._values().clone()], [arrays["exp_avg"]], [arrays["exp_avg_sq"]],
                 [arrays["max_exp_avg_sq"]] if amsgrad else [], [torch.tensor(float(st["step"] - 1))],
                 foreach=False, amsgrad=amsgrad, beta1=beta1, beta2=beta2, lr=kw.get("lr", 1e-3),
                 weight_decay=kw.get("weight_decay", 0.0), eps=kw.get("eps", 1e-8), maximize=kw.get("maximize", False),
                 decoupled_weight_decay=case.optimizer == "AdamW")
            p[rows] = pr
            for n in names:
                st[n][rows] = arrays[n]
        snap: Snapshot = {}
        for i, (p, st) in enumerate(zip(params, state)):
            snap[f"p{i}"] = p.numpy().copy()
            for name, v in st.items():
                snap[f"p{i}.{name}"] = np.array(float(v)) if name == "step" else v.numpy().copy()
        snaps.append(snap)
    return snaps


def run_fusedopt(fusedopt: Any, case: SparseCase, backend: str = "native") -> list[Snapshot]:
    params = initial_params(case.dtype)
    opt = getattr(fusedopt, case.optimizer)(params, backend=backend, **case.kwargs)
    snaps = []
    for row in grad_stream(case.dtype):
        opt.step([None if g is None else fusedopt.RowSparse(*g) for g in row])
        snap: Snapshot = {}
        for i, p in enumerate(params):
            snap[f"p{i}"] = p.copy()
            for name, v in opt.state.get(i, {}).items():
                snap[f"p{i}.{name}"] = np.array(float(v)) if name == "step" else v.copy()
        snaps.append(snap)
    return snaps


def golden_arrays(torch: Any) -> dict[str, np.ndarray]:
    """Everything the golden file holds: per case and step, each snapshot entry."""
    out: dict[str, np.ndarray] = {}
    meta = {"torch": torch.__version__, "crc": {d: inputs_crc(d) for d in ("float32", "float64")}}
    out["__meta__"] = np.array(json.dumps(meta))
    for case in CASES:
        for t, snap in enumerate(run_torch(case)):
            if t + 1 not in GOLDEN_STEPS:
                continue
            for name, v in snap.items():
                out[f"{case.id}/{t}/{name}"] = v
    return out


def unpack_golden(data: Any, case: SparseCase) -> dict[int, Snapshot]:
    """The golden snapshots of a case, by 0-based step index (GOLDEN_STEPS only)."""
    snaps: dict[int, Snapshot] = {}
    prefix = case.id + "/"
    for key in data.files:
        if key.startswith(prefix):
            t, name = key[len(prefix):].split("/", 1)
            snaps.setdefault(int(t), {})[name] = data[key]
    return snaps
