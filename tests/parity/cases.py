"""The torch-parity case matrix: the one source of truth.

Used by ``tools/make_parity_golden.py`` (which runs torch and writes
``tests/data/parity_*.npz``) and by the tests in this package (which run
fusedopt, and torch too when it is importable, on exactly the same cases).

Nothing here imports torch or fusedopt at module level: ``run_torch_*``
import torch lazily, ``run_fusedopt_*`` take the ``fusedopt`` module as an
argument.

Changing anything that affects a trajectory (a config, the shapes, the
gradient stream, the schedule of ``None`` gradients) invalidates the golden
data; the golden tests detect that and ask you to rerun
``python tools/make_parity_golden.py``.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# Bump when the layout of the .npz files changes.
GOLDEN_FORMAT = 1

DTYPES = ("float32", "float64")

# Several parameters of different shapes, one of them 0-d; (17,) is longer
# than one AVX-512 float32 vector (16 lanes) so every SIMD target runs a tail.
SHAPES: tuple[tuple[int, ...], ...] = ((3, 2), (3,), (1, 3), (), (17,))
N_PARAMS = len(SHAPES)
SIZES = tuple(int(np.prod(s, dtype=np.int64)) for s in SHAPES)
OFFSETS = tuple(int(x) for x in np.cumsum((0,) + SIZES))
TOTAL = OFFSETS[-1]

N_STEPS = 20  # the default; a case may run more (OptCase.n_steps)

# Scalars kept in optimizer state (torch keeps them as 0-d float32 tensors,
# fusedopt as Python numbers).  Every other state entry is an array of the
# parameter's dtype, shaped like it (or, as Adafactor's row_var and col_var,
# of fewer elements: stored at the start of the parameter's span, shapes in
# ``<id>.shape.<name>``).
SCALAR_STATE = ("step", "mu_product", "eta", "mu")
FLOAT_SCALARS = SCALAR_STATE[1:]  # torch: float32 0-d tensors; fusedopt: Python floats

OPTIMIZERS = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam")
OPTIMIZERS += ("Adadelta", "Rprop", "ASGD")
OPTIMIZERS += ("Adafactor",)  # per-array reductions; state of other shapes (row_var, col_var)


# --------------------------------------------------------------------------
# The gradient schedule: which parameter gets a gradient at which step.
# Step indices here are 0-based (index t is the (t+1)-th call to step()).
# --------------------------------------------------------------------------
ALL_NONE_STEP = 2  # every gradient is None: step() must be a no-op
LATE_PARAM, LATE_UNTIL = 3, 2  # the 0-d parameter: None before index 2, first grad at index 3
FROZEN_PARAM, FROZEN_STEPS = 0, range(5, 9)  # frozen (grad None) for 4 steps, then resumes
PARTIAL_NONE_STEP, PARTIAL_NONE_PARAMS = 12, (1, 4)  # some gradients None
ZERO_GRAD_STEP, ZERO_GRAD_PARAM = 10, 1  # an all-zero gradient (not None: the step happens)
ZERO_ELEM_STEP, ZERO_ELEM_PARAM = 6, 4  # one exact-zero element


def grad_present(step: int, i: int) -> bool:
    if step == ALL_NONE_STEP:
        return False
    if i == LATE_PARAM and step < LATE_UNTIL:
        return False
    if i == FROZEN_PARAM and step in FROZEN_STEPS:
        return False
    return not (step == PARTIAL_NONE_STEP and i in PARTIAL_NONE_PARAMS)


def _seed(text: str) -> int:
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def make_stream(seed: int, dtype: str, n_steps: int = N_STEPS):
    """Initial parameters and the gradient stream (list per step, None = no grad).

    Values are drawn in float64 from a seeded generator (independent of which
    gradients are None, so the schedule does not shift the values) and cast
    to ``dtype``.  Gradient magnitudes vary per step and parameter so that
    amsgrad's running max and Adamax's infinity norm actually switch.
    """
    rng = np.random.default_rng(seed)
    init = [np.asarray(rng.standard_normal(s), dtype=np.float64).astype(dtype) for s in SHAPES]
    grads: list[list[np.ndarray | None]] = []
    for t in range(n_steps):
        row: list[np.ndarray | None] = []
        for i, s in enumerate(SHAPES):
            g = np.asarray(rng.standard_normal(s) * rng.uniform(0.2, 2.0), dtype=np.float64)
            if t == ZERO_GRAD_STEP and i == ZERO_GRAD_PARAM:
                g = np.zeros(s)
            if t == ZERO_ELEM_STEP and i == ZERO_ELEM_PARAM:
                g.reshape(-1)[0] = 0.0
            row.append(g.astype(dtype) if grad_present(t, i) else None)
        grads.append(row)
    return init, grads


# --------------------------------------------------------------------------
# Optimizer cases
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class OptCase:
    optimizer: str
    desc: str
    kwargs: dict[str, Any]
    dtype: str
    # Param groups as ((first, stop, overrides), ...) over the flat parameter
    # order; None = one group holding every parameter.
    groups: tuple | None = None
    # fusedopt-only clipping keywords (``max_grad_norm`` or ``clip_value``,
    # ``clip_scope``); the torch side applies the matching torch.nn.utils clip
    # to every gradient before step(), i.e. a global norm over all groups.
    clip: dict[str, Any] | None = None
    upstream: bool = True  # the config is one of common_optimizers.py's inputs
    n_steps: int = N_STEPS

    def __hash__(self) -> int:  # kwargs is a dict; the id names the case
        return hash(self.id)

    @property
    def name(self) -> str:
        return f"{self.optimizer}-{self.desc.replace(' ', '_')}"

    @property
    def id(self) -> str:
        return f"{self.name}-{self.dtype}"

    @property
    def seed(self) -> int:
        return _seed(self.name)

    def stream(self):
        return make_stream(self.seed, self.dtype, self.n_steps)

    def config_json(self) -> str:
        return json.dumps(
            {
                "optimizer": self.optimizer,
                "desc": self.desc,
                "kwargs": self.kwargs,
                "dtype": self.dtype,
                "groups": self.groups,
                "clip": self.clip,
                "seed": self.seed,
                "shapes": SHAPES,
                "n_steps": self.n_steps,
            },
            sort_keys=True,
        )


_GROUPS = lambda **over: ((0, 3, {}), (3, N_PARAMS, over))

# (desc, kwargs, extra) per optimizer.  The upstream configs are exactly the
# CPU, non-Tensor-lr inputs of torch 2.13's common_optimizers.py
# (optim_inputs_func_<name>); capturable/Tensor-lr ones are CUDA-only or
# Tensor-lr-only and fusedopt takes Python floats.  The extra ones cover the
# remaining combinations the issue lists (decoupled weight decay on Adam,
# momentum without centering, nesterov + maximize, ...), param groups with
# per-group hyperparameters, and in-optimizer clipping.
_CONFIGS: dict[str, list[tuple]] = {
    "SGD": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 1e-2}, {}),
        ("non-zero weight_decay", {"weight_decay": 0.5}, {}),
        ("momentum", {"momentum": 0.9}, {}),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, {}),
        ("dampening", {"momentum": 0.9, "dampening": 0.5}, {}),
        ("weight_decay w momentum", {"momentum": 0.9, "weight_decay": 0.1}, {}),
        ("nesterov", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, {}),
        ("nesterov maximize", {"lr": 1e-2, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1, "maximize": True}, {"upstream": False}),
        ("dampening weight_decay maximize", {"lr": 1e-2, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.2, "maximize": True}, {"upstream": False}),
        ("param groups", {"lr": 1e-2, "momentum": 0.9}, {"upstream": False, "groups": _GROUPS(lr=0.05, momentum=0.5, weight_decay=0.2)}),
        ("max_grad_norm", {"lr": 1e-2, "momentum": 0.9}, {"upstream": False, "clip": {"max_grad_norm": 1.0}}),
        ("clip_value", {"lr": 1e-2}, {"upstream": False, "clip": {"clip_value": 0.5}}),
        ("max_grad_norm global param groups", {"lr": 1e-2, "momentum": 0.9},
         {"upstream": False, "groups": _GROUPS(lr=0.05), "clip": {"max_grad_norm": 2.0, "clip_scope": "global"}}),
    ],
    "Adagrad": [
        ("default", {}, {}),
        ("nonzero weight_decay", {"weight_decay": 0.1}, {}),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, {}),
        ("non-default lr", {"lr": 0.1}, {}),
        ("initial_accumulator_value", {"initial_accumulator_value": 0.1, "weight_decay": 0.1}, {}),
        ("lr_decay", {"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1}, {}),
        ("eps maximize", {"lr": 0.1, "eps": 1e-6, "maximize": True}, {"upstream": False}),
        ("param groups", {"lr": 0.1}, {"upstream": False, "groups": _GROUPS(lr=0.05, weight_decay=0.1, lr_decay=0.1)}),
    ],
    "RMSprop": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 1e-3}, {}),
        ("nonzero weight_decay", {"weight_decay": 0.1}, {}),
        ("maximize", {"maximize": True}, {}),
        ("centered", {"weight_decay": 0.1, "centered": True}, {}),
        ("maximize weight_decay", {"maximize": True, "weight_decay": 0.1}, {}),
        ("momentum", {"weight_decay": 0.1, "centered": True, "momentum": 0.1}, {}),
        ("maximize centered weight_decay w momentum", {"weight_decay": 0.1, "centered": True, "momentum": 0.1, "maximize": True}, {}),
        ("momentum uncentered", {"momentum": 0.9, "alpha": 0.9}, {"upstream": False}),
        ("param groups", {"momentum": 0.5}, {"upstream": False, "groups": _GROUPS(lr=0.05, alpha=0.9, centered=True, weight_decay=0.1)}),
    ],
    "Adam": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 0.01}, {}),
        ("nonzero weight_decay", {"weight_decay": 0.1}, {}),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, {}),
        ("amsgrad", {"weight_decay": 0.1, "amsgrad": True}, {}),
        ("decoupled_weight_decay", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, {"upstream": False}),
        ("amsgrad maximize betas eps", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True, "maximize": True}, {"upstream": False}),
        ("param groups", {"lr": 0.01}, {"upstream": False, "groups": _GROUPS(lr=0.05, betas=(0.5, 0.9), weight_decay=0.1, amsgrad=True)}),
        ("max_grad_norm", {"lr": 0.01}, {"upstream": False, "clip": {"max_grad_norm": 0.5}}),
    ],
    "AdamW": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 0.01}, {}),
        ("nonzero weight_decay", {"weight_decay": 0.1}, {}),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, {}),
        ("amsgrad", {"weight_decay": 0.1, "amsgrad": True}, {}),
        ("amsgrad maximize", {"lr": 0.05, "weight_decay": 0.5, "amsgrad": True, "maximize": True}, {"upstream": False}),
        ("param groups", {"lr": 0.01}, {"upstream": False, "groups": _GROUPS(lr=0.05, weight_decay=0.3)}),
    ],
    "Adamax": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 0.1}, {}),
        ("nonzero weight_decay", {"weight_decay": 0.1}, {}),
        ("maximize", {"maximize": True}, {}),
        ("maximize weight_decay", {"weight_decay": 0.1, "maximize": True}, {}),
        ("param groups", {"lr": 0.1}, {"upstream": False, "groups": _GROUPS(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)}),
    ],
    "NAdam": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 1e-3}, {}),
        ("non-zero momentum_decay", {"momentum_decay": 6e-3}, {}),
        ("weight_decay", {"weight_decay": 0.1}, {}),
        ("weight_decay momentum_decay", {"weight_decay": 0.1, "momentum_decay": 6e-3}, {}),
        ("decoupled_weight_decay", {"weight_decay": 0.1, "momentum_decay": 6e-3, "decoupled_weight_decay": True}, {}),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, {}),
        ("decoupled maximize", {"lr": 0.01, "weight_decay": 0.2, "decoupled_weight_decay": True, "maximize": True}, {"upstream": False}),
        ("param groups", {"lr": 0.01}, {"upstream": False, "groups": _GROUPS(lr=0.02, momentum_decay=0.01, weight_decay=0.1)}),
    ],
    "RAdam": [
        ("default", {}, {}),
        ("non-default lr", {"lr": 2e-3}, {}),
        ("non-default eps", {"eps": 1e-6}, {}),
        ("nonzero weight_decay", {"weight_decay": 0.1}, {}),
        ("decoupled_weight_decay", {"weight_decay": 0.1, "decoupled_weight_decay": True}, {}),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, {}),
        ("decoupled maximize", {"lr": 0.01, "weight_decay": 0.2, "decoupled_weight_decay": True, "maximize": True}, {"upstream": False}),
        ("param groups", {"lr": 0.01}, {"upstream": False, "groups": _GROUPS(lr=0.02, betas=(0.8, 0.99), weight_decay=0.1, decoupled_weight_decay=True)}),
    ],
}

# torch.optim's remaining element-wise optimizers: 30 steps each (LONG).
LONG = {"n_steps": 30}
_CONFIGS |= {
    "Adadelta": [
        ("default", {}, LONG),
        ("non-default lr", {"lr": 0.01}, LONG),
        ("nonzero weight_decay", {"weight_decay": 0.1}, LONG),
        ("maximize", {"maximize": True}, LONG),
        ("maximize, weight_decay", {"weight_decay": 0.1, "maximize": True}, LONG),
        ("rho", {"rho": 0.95, "weight_decay": 0.9}, LONG),
        ("rho one eps", {"lr": 0.5, "rho": 1.0, "eps": 1e-4}, {**LONG, "upstream": False}),
        ("param groups", {"lr": 0.5}, {**LONG, "upstream": False, "groups": _GROUPS(lr=2.0, rho=0.5, eps=1e-3, weight_decay=0.1)}),
        ("max_grad_norm", {"weight_decay": 0.1}, {**LONG, "upstream": False, "clip": {"max_grad_norm": 0.5}}),
        ("clip_value maximize", {"maximize": True}, {**LONG, "upstream": False, "clip": {"clip_value": 0.5}}),
    ],
    "Rprop": [
        ("default", {}, LONG),
        ("non-default lr", {"lr": 2e-4}, LONG),
        ("non-default etas", {"etas": (0.5, 1.5)}, LONG),
        ("non-default step_sizes", {"step_sizes": (2e-6, 100)}, LONG),
        ("maximize", {"maximize": True}, LONG),
        ("clamped both ways", {"lr": 0.1, "etas": (0.3, 1.9), "step_sizes": (0.05, 0.2)}, {**LONG, "upstream": False}),
        ("param groups", {"lr": 1e-3}, {**LONG, "upstream": False, "groups": _GROUPS(lr=0.05, etas=(0.2, 1.1), step_sizes=(1e-3, 0.06))}),
        ("max_grad_norm maximize", {"maximize": True}, {**LONG, "upstream": False, "clip": {"max_grad_norm": 0.5}}),
        ("clip_value", {}, {**LONG, "upstream": False, "clip": {"clip_value": 0.5}}),
    ],
    "ASGD": [
        ("default", {}, LONG),
        ("non-default lambd", {"lambd": 0.1}, LONG),
        ("non-default lr", {"lr": 0.02}, LONG),
        ("t0", {"t0": 100}, LONG),
        ("maximize", {"maximize": True}, LONG),
        ("nonzero weight_decay", {"weight_decay": 0.1}, LONG),
        ("maximize, nonzero weight_decay", {"weight_decay": 0.1, "maximize": True}, LONG),
        # t0 small enough that mu < 1 (the averaging branch) within the run
        ("averaging", {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 5}, {**LONG, "upstream": False}),
        ("averaging from the start", {"lr": 0.1, "lambd": 0.5, "t0": 0, "weight_decay": 0.2, "maximize": True},
         {**LONG, "upstream": False}),
        ("param groups", {"t0": 3}, {**LONG, "upstream": False, "groups": _GROUPS(lr=0.05, lambd=0.2, alpha=1.0, t0=12, weight_decay=0.1)}),
        ("max_grad_norm", {"lr": 0.05, "t0": 4}, {**LONG, "upstream": False, "clip": {"max_grad_norm": 1.0}}),
        ("clip_value maximize", {"t0": 8, "maximize": True}, {**LONG, "upstream": False, "clip": {"clip_value": 0.5}}),
    ],
}

# Adafactor (a rule with per-array reductions; row_var/col_var are not the parameter's shape):
# torch 2.13's upstream inputs, then every option and both sides of each min/max/clamp.
_CONFIGS |= {
    "Adafactor": [
        ("default", {}, LONG),
        ("nonzero weight_decay", {"weight_decay": 0.1, "lr": 0.01}, LONG),
        ("maximize", {"weight_decay": 0.1, "maximize": True}, LONG),
        ("non-default beta2_decay", {"beta2_decay": -1.0}, LONG),
        ("non-default clipping threshold d", {"d": 1.5}, LONG),
        ("beta2_decay zero", {"beta2_decay": 0.0}, {**LONG, "upstream": False}),
        ("lr above 1/sqrt(t)", {"lr": 0.5}, {**LONG, "upstream": False}),
        ("eps1 given", {"eps": (1e-3, 1e-2)}, {**LONG, "upstream": False}),
        ("eps1 clamps", {"eps": (0.5, 1e-3), "d": 3.0}, {**LONG, "upstream": False}),
        ("eps2 dominates", {"eps": (None, 5.0), "lr": 0.05}, {**LONG, "upstream": False}),
        ("param groups", {"lr": 0.02}, {**LONG, "upstream": False, "groups": _GROUPS(lr=0.05, d=2.0, weight_decay=0.1, eps=(1e-4, 1e-2))}),
        ("max_grad_norm", {"lr": 0.05}, {**LONG, "upstream": False, "clip": {"max_grad_norm": 1.0}}),
        ("clip_value maximize", {"maximize": True}, {**LONG, "upstream": False, "clip": {"clip_value": 0.5}}),
    ],
}


def _build_opt_cases() -> list[OptCase]:
    out = []
    for opt_name in OPTIMIZERS:
        for desc, kwargs, extra in _CONFIGS[opt_name]:
            for dtype in DTYPES:
                out.append(OptCase(opt_name, desc, dict(kwargs), dtype, **extra))
    ids = [c.id for c in out]
    assert len(set(ids)) == len(ids), "duplicate case ids"
    return out


OPT_CASES: list[OptCase] = _build_opt_cases()


def cases_for(optimizer: str) -> list[OptCase]:
    return [c for c in OPT_CASES if c.optimizer == optimizer]


def golden_path(optimizer: str) -> Path:
    return DATA_DIR / f"parity_{optimizer.lower()}.npz"


def _param_spec(case: OptCase, params: list):
    if case.groups is None:
        return list(params)
    return [{"params": list(params[a:b]), **over} for a, b, over in case.groups]


# --------------------------------------------------------------------------
# Trajectories: snapshot i = state right after construction (i == 0) or after
# step i (1..N_STEPS).  A snapshot is {"params": [ndarray], "state": {param
# index: {name: ndarray | int | float}}} with torch's state names.
# --------------------------------------------------------------------------
def _torch_snapshot(opt, params) -> dict:
    snap_state: dict[int, dict[str, Any]] = {}
    for i, p in enumerate(params):
        st = opt.state.get(p)
        if not st:
            continue
        d: dict[str, Any] = {}
        for k, v in st.items():
            if k == "step":
                d[k] = int(v.item()) if hasattr(v, "item") else int(v)
            elif k in SCALAR_STATE:
                d[k] = float(v.item()) if hasattr(v, "item") else float(v)
            else:
                d[k] = v.detach().clone().numpy()
        snap_state[i] = d
    return {"params": [p.detach().clone().numpy() for p in params], "state": snap_state}


def torch_clip(torch, params, clip: dict[str, Any] | None):
    """The torch.nn.utils call equivalent to fusedopt's in-optimizer clipping."""
    if not clip:
        return
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    if "max_grad_norm" in clip:
        torch.nn.utils.clip_grad_norm_(with_grad, clip["max_grad_norm"])
    if "clip_value" in clip:
        torch.nn.utils.clip_grad_value_(with_grad, clip["clip_value"])


def make_torch_case(case: OptCase, init):
    """-> (torch optimizer, list of torch parameters) for ``case`` from ``init``."""
    import torch

    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(torch.optim, case.optimizer)(_param_spec(case, params), **case.kwargs)
    return opt, params


def torch_steps(case: OptCase, opt, params, rows) -> list[dict]:
    """Feed ``rows`` of gradients to torch, one step() each; snapshot after each."""
    import torch

    snaps = []
    for row in rows:
        for p, g in zip(params, row):
            p.grad = None if g is None else torch.tensor(g.copy())
        torch_clip(torch, params, case.clip)
        opt.step()
        snaps.append(_torch_snapshot(opt, params))
    return snaps


def run_torch_case(case: OptCase, init, grads) -> list[dict]:
    """Run torch.optim on ``case`` (its default for-loop implementation on CPU)."""
    opt, params = make_torch_case(case, init)
    return [_torch_snapshot(opt, params)] + torch_steps(case, opt, params, grads)


def fusedopt_snapshot(opt, params) -> dict:
    snap_state: dict[Any, dict[str, Any]] = {}
    for key, st in opt.state.items():
        if not st:
            continue
        snap_state[key] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
    return {"params": [p.copy() for p in params], "state": snap_state}


def make_fusedopt_case(fusedopt, case: OptCase, init, backend: str):
    """-> (fusedopt optimizer, list of its parameter arrays) for ``case`` from ``init``."""
    params = [a.copy() for a in init]
    kwargs = dict(case.kwargs)
    if case.clip:
        kwargs.update(case.clip)
    opt = getattr(fusedopt, case.optimizer)(_param_spec(case, params), backend=backend, **kwargs)
    return opt, params


def fusedopt_steps(opt, params, rows) -> list[dict]:
    snaps = []
    for row in rows:
        opt.step([None if g is None else g.copy() for g in row])
        snaps.append(fusedopt_snapshot(opt, params))
    return snaps


def run_fusedopt_case(fusedopt, case: OptCase, init, grads, backend: str) -> list[dict]:
    opt, params = make_fusedopt_case(fusedopt, case, init, backend)
    return [fusedopt_snapshot(opt, params)] + fusedopt_steps(opt, params, grads)


# --------------------------------------------------------------------------
# Golden (de)serialisation: per case a handful of packed arrays, so the
# files stay small (one zip member per array, not per step and parameter).
#   <id>.config      JSON (0-d str array)
#   <id>.params      (N_STEPS+1, TOTAL) param dtype: row 0 = initial params
#   <id>.grads       (N_STEPS, TOTAL)   param dtype, 0 where the grad is None
#   <id>.grad_mask   (N_STEPS, N_PARAMS) bool
#   <id>.has_state   (N_STEPS+1, N_PARAMS) bool: torch has state for the param
#   <id>.step        (N_STEPS+1, N_PARAMS) int32, -1 where absent
#   <id>.s.<name>    (N_STEPS+1, TOTAL) param dtype, array state (NaN where absent)
#   <id>.m.<name>    (N_STEPS+1, N_PARAMS) bool: the param has that state entry
#   <id>.mu_product  (N_STEPS+1, N_PARAMS) float32 (NaN where absent), NAdam only
#   <id>.eta, .mu    the same, ASGD only
# --------------------------------------------------------------------------
def _flat(arrs) -> np.ndarray:
    return np.concatenate([np.asarray(a).reshape(-1) for a in arrs])


def _unflat(row: np.ndarray) -> list[np.ndarray]:
    return [row[OFFSETS[i] : OFFSETS[i + 1]].reshape(SHAPES[i]).copy() for i in range(N_PARAMS)]


def pack_case(case: OptCase, init, grads, snaps) -> dict[str, np.ndarray]:
    dt = np.dtype(case.dtype)
    n = len(snaps)
    names: list[str] = []
    for s in snaps:
        for st in s["state"].values():
            for k in st:
                if k not in SCALAR_STATE and k not in names:
                    names.append(k)
    out: dict[str, np.ndarray] = {}
    p = case.id
    out[f"{p}.config"] = np.array(case.config_json())
    out[f"{p}.params"] = np.stack([_flat(s["params"]) for s in snaps]).astype(dt)
    assert np.array_equal(out[f"{p}.params"][0], _flat(init))
    out[f"{p}.grads"] = np.stack(
        [_flat([np.zeros(SHAPES[i], dt) if g is None else g for i, g in enumerate(row)]) for row in grads]
    ).astype(dt)
    out[f"{p}.grad_mask"] = np.array([[g is not None for g in row] for row in grads], dtype=bool)
    has = np.zeros((n, N_PARAMS), dtype=bool)
    step = np.full((n, N_PARAMS), -1, dtype=np.int32)
    floats = {k: np.full((n, N_PARAMS), np.nan, dtype=np.float32) for k in FLOAT_SCALARS}
    arrays = {k: np.full((n, TOTAL), np.nan, dtype=dt) for k in names}
    present = {k: np.zeros((n, N_PARAMS), dtype=bool) for k in names}
    shapes: dict[str, list] = {k: [None] * N_PARAMS for k in names}
    for r, s in enumerate(snaps):
        for i, st in s["state"].items():
            has[r, i] = True
            if "step" in st:
                step[r, i] = st["step"]
            for k in FLOAT_SCALARS:
                if k in st:
                    floats[k][r, i] = st[k]
            for k in names:
                if k in st:
                    present[k][r, i] = True
                    flat = np.asarray(st[k]).reshape(-1)
                    arrays[k][r, OFFSETS[i] : OFFSETS[i] + flat.size] = flat
                    shapes[k][i] = list(np.shape(st[k]))
    out[f"{p}.has_state"] = has
    out[f"{p}.step"] = step
    for k, a in floats.items():
        if not np.isnan(a).all():
            out[f"{p}.{k}"] = a
    for k, a in arrays.items():
        out[f"{p}.s.{k}"] = a
        out[f"{p}.m.{k}"] = present[k]
        if any(s is not None and tuple(s) != SHAPES[i] for i, s in enumerate(shapes[k])):
            out[f"{p}.shape.{k}"] = np.array(json.dumps(shapes[k]))
    return out


def unpack_case(data, case: OptCase):
    """Inverse of pack_case -> (config dict, init, grads, snaps)."""
    p = case.id
    config = json.loads(str(data[f"{p}.config"]))
    params = data[f"{p}.params"]
    g = data[f"{p}.grads"]
    mask = data[f"{p}.grad_mask"]
    has = data[f"{p}.has_state"]
    step = data[f"{p}.step"]
    floats = {k: data[f"{p}.{k}"] for k in FLOAT_SCALARS if f"{p}.{k}" in data}
    prefix = f"{p}.s."
    names = [k[len(prefix) :] for k in data if k.startswith(prefix)]
    arrays = {k: data[prefix + k] for k in names}
    present = {k: data[f"{p}.m.{k}"] for k in names}
    shapes = {k: json.loads(str(data[f"{p}.shape.{k}"])) if f"{p}.shape.{k}" in data else list(SHAPES) for k in names}
    init = _unflat(params[0])
    grads = [
        [_unflat(g[t])[i] if mask[t, i] else None for i in range(N_PARAMS)] for t in range(g.shape[0])
    ]
    snaps = []
    for r in range(params.shape[0]):
        st: dict[int, dict[str, Any]] = {}
        for i in range(N_PARAMS):
            if not has[r, i]:
                continue
            d: dict[str, Any] = {}
            if step[r, i] >= 0:
                d["step"] = int(step[r, i])
            for k, a in floats.items():
                if not np.isnan(a[r, i]):
                    d[k] = float(a[r, i])
            for k in names:
                if present[k][r, i]:
                    shape = tuple(shapes[k][i])
                    size = int(np.prod(shape, dtype=np.int64))
                    d[k] = arrays[k][r, OFFSETS[i] : OFFSETS[i] + size].reshape(shape).copy()
            st[i] = d
        snaps.append({"params": _unflat(params[r]), "state": st})
    return config, init, grads, snaps


# --------------------------------------------------------------------------
# Gradient clipping cases (torch.nn.utils.clip_grad_norm_ / clip_grad_value_
# / get_total_norm).
# --------------------------------------------------------------------------
CLIP_SHAPES = ((4, 3), (5,), (), (33,))


@dataclass(frozen=True)
class ClipCase:
    fn: str  # "clip_grad_norm_" | "clip_grad_value_" | "get_total_norm"
    dtype: str
    arg: float  # max_norm or clip_value (unused for get_total_norm)
    norm_type: float = 2.0
    scale: float = 1.0  # gradient magnitude (selects clipping or not)
    poison: str = ""  # "inf" / "nan": one non-finite gradient element

    @property
    def id(self) -> str:
        tail = f"-{self.poison}" if self.poison else ""
        if self.fn == "clip_grad_value_":
            return f"{self.fn}-c{self.arg:g}{tail}-{self.dtype}"
        return f"{self.fn}-p{self.norm_type:g}-m{self.arg:g}-s{self.scale:g}{tail}-{self.dtype}"

    def grads(self) -> list[np.ndarray]:
        rng = np.random.default_rng(_seed(self.id.rsplit("-", 1)[0]))
        out = [np.asarray(rng.standard_normal(s) * self.scale).astype(self.dtype) for s in CLIP_SHAPES]
        if self.poison:
            out[0][1, 2] = np.inf if self.poison == "inf" else np.nan
        return out


def _build_clip_cases() -> list[ClipCase]:
    out = []
    for dtype in DTYPES:
        for p in (2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0.0):
            for max_norm, scale in ((1.0, 1.0), (100.0, 1.0), (0.0, 1.0), (2.5, 1e-3)):
                out.append(ClipCase("clip_grad_norm_", dtype, max_norm, p, scale))
            out.append(ClipCase("get_total_norm", dtype, 0.0, p, 1.0))
        for c in (0.1, 0.5, 5.0):
            out.append(ClipCase("clip_grad_value_", dtype, c))
        # non-finite gradients without error_if_nonfinite: torch scales by
        # max_norm / (inf + 1e-6) = 0 (inf * 0 = nan) or by nan
        for poison in ("inf", "nan"):
            out.append(ClipCase("clip_grad_norm_", dtype, 1.0, 2.0, 1.0, poison))
            out.append(ClipCase("clip_grad_norm_", dtype, 1.0, math.inf, 1.0, poison))
            out.append(ClipCase("get_total_norm", dtype, 0.0, 2.0, 1.0, poison))
            out.append(ClipCase("clip_grad_value_", dtype, 0.5, poison=poison))
    return out


CLIP_CASES: list[ClipCase] = _build_clip_cases()
CLIP_GOLDEN = DATA_DIR / "parity_clip.npz"


def run_torch_clip(case: ClipCase, grads) -> tuple[float | None, list[np.ndarray]]:
    import torch

    ts = [torch.tensor(g.copy()) for g in grads]
    if case.fn == "clip_grad_norm_":
        params = [torch.zeros_like(t, requires_grad=True) for t in ts]
        for p, t in zip(params, ts):
            p.grad = t
        norm = float(torch.nn.utils.clip_grad_norm_(params, case.arg, norm_type=case.norm_type))
        return norm, [p.grad.numpy().copy() for p in params]
    if case.fn == "clip_grad_value_":
        params = [torch.zeros_like(t, requires_grad=True) for t in ts]
        for p, t in zip(params, ts):
            p.grad = t
        torch.nn.utils.clip_grad_value_(params, case.arg)
        return None, [p.grad.numpy().copy() for p in params]
    norm = float(torch.nn.utils.get_total_norm(ts, norm_type=case.norm_type))
    return norm, [t.numpy().copy() for t in ts]


def run_fusedopt_clip(fusedopt, case: ClipCase, grads) -> tuple[float | None, list[np.ndarray]]:
    gs = [g.copy() for g in grads]
    if case.fn == "clip_grad_norm_":
        norm = float(fusedopt.clip_grad_norm_(gs, case.arg, norm_type=case.norm_type))
        return norm, gs
    if case.fn == "clip_grad_value_":
        fusedopt.clip_grad_value_(gs, case.arg)
        return None, gs
    return float(fusedopt.get_total_norm(gs, case.norm_type)), gs


# --------------------------------------------------------------------------
# Scheduler cases: a fusedopt optimizer driven by fusedopt.schedules.<Name>
# against torch.optim.<opt> driven by torch.optim.lr_scheduler.<Name>.
# Lambdas are referenced by name so both sides (and the JSON) can use them.
# --------------------------------------------------------------------------
LAMBDAS = {
    "inv_sqrt": lambda e: 1.0 / math.sqrt(e + 1.0),
    "mult_095": lambda e: 0.95,
    "warmup5": lambda e: min(1.0, (e + 1) / 5.0),
}

SCHED_STEPS = 25


@dataclass(frozen=True)
class SchedCase:
    desc: str
    optimizer: str
    opt_kwargs: dict[str, Any]
    scheduler: str
    # kwargs; a value {"lambda": name} is replaced by LAMBDAS[name]; for
    # SequentialLR / ChainedScheduler "schedulers" is a list of (name, kwargs).
    sched_kwargs: dict[str, Any]
    dtype: str = "float64"
    # ReduceLROnPlateau: metric per step
    metrics: tuple[float, ...] | None = None
    extra_state: tuple[str, ...] = field(default=())  # group keys compared besides lr

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> str:
        return f"{self.scheduler}-{self.desc.replace(' ', '_')}-{self.optimizer}-{self.dtype}"

    @property
    def seed(self) -> int:
        return _seed(self.id)

    def stream(self):
        return make_stream(self.seed, self.dtype, SCHED_STEPS)

    def config_json(self) -> str:
        return json.dumps(
            {
                "optimizer": self.optimizer,
                "opt_kwargs": self.opt_kwargs,
                "scheduler": self.scheduler,
                "sched_kwargs": self.sched_kwargs,
                "dtype": self.dtype,
                "metrics": self.metrics,
                "seed": self.seed,
                "n_steps": SCHED_STEPS,
            },
            sort_keys=True,
        )


_PLATEAU = tuple([1.0, 0.9, 0.85] + [0.85] * 6 + [0.8] + [0.8] * 8 + [0.7] * 7)
assert len(_PLATEAU) == SCHED_STEPS

SCHED_CASES: list[SchedCase] = [
    SchedCase("lambda", "SGD", {"lr": 0.1, "momentum": 0.9}, "LambdaLR", {"lr_lambda": {"lambda": "inv_sqrt"}}),
    SchedCase("warmup", "Adam", {"lr": 0.01}, "LambdaLR", {"lr_lambda": {"lambda": "warmup5"}}),
    SchedCase("default", "Adam", {"lr": 0.01}, "MultiplicativeLR", {"lr_lambda": {"lambda": "mult_095"}}),
    SchedCase("default", "SGD", {"lr": 0.1, "momentum": 0.9}, "StepLR", {"step_size": 4, "gamma": 0.5}),
    SchedCase("dup milestones", "AdamW", {"lr": 0.01}, "MultiStepLR", {"milestones": [3, 7, 7, 12], "gamma": 0.5}),
    SchedCase("default", "RMSprop", {"lr": 0.01}, "ConstantLR", {"factor": 0.25, "total_iters": 6}),
    SchedCase("default", "Adam", {"lr": 0.01}, "LinearLR", {"start_factor": 0.2, "end_factor": 1.0, "total_iters": 8}),
    SchedCase("default", "SGD", {"lr": 0.1}, "ExponentialLR", {"gamma": 0.9}),
    SchedCase("default", "Adagrad", {"lr": 0.1}, "PolynomialLR", {"total_iters": 15, "power": 2.0}),
    SchedCase("periodic", "Adam", {"lr": 0.01}, "CosineAnnealingLR", {"T_max": 8, "eta_min": 1e-4}),
    SchedCase("T_mult2", "SGD", {"lr": 0.1, "momentum": 0.9}, "CosineAnnealingWarmRestarts", {"T_0": 3, "T_mult": 2, "eta_min": 1e-3}),
    SchedCase("triangular2 momentum", "SGD", {"lr": 0.1, "momentum": 0.9}, "CyclicLR",
              {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "mode": "triangular2"}, extra_state=("momentum",)),
    SchedCase("exp_range betas", "Adam", {"lr": 0.01}, "CyclicLR",
              {"base_lr": 0.001, "max_lr": 0.01, "step_size_up": 3, "step_size_down": 5, "mode": "exp_range", "gamma": 0.95},
              extra_state=("betas",)),
    SchedCase("momentum", "SGD", {"lr": 0.1, "momentum": 0.9}, "OneCycleLR",
              {"max_lr": 0.5, "total_steps": SCHED_STEPS + 1}, extra_state=("momentum",)),
    SchedCase("betas linear three_phase", "Adam", {"lr": 0.01}, "OneCycleLR",
              {"max_lr": 0.02, "total_steps": SCHED_STEPS + 1, "anneal_strategy": "linear", "three_phase": True},
              extra_state=("betas",)),
    SchedCase("betas", "AdamW", {"lr": 0.01}, "OneCycleLR",
              {"max_lr": 0.05, "total_steps": SCHED_STEPS + 1, "pct_start": 0.25}, extra_state=("betas",)),
    SchedCase("default", "SGD", {"lr": 0.1, "momentum": 0.9}, "ReduceLROnPlateau",
              {"factor": 0.5, "patience": 2, "cooldown": 1}, metrics=_PLATEAU),
    SchedCase("linear then exp", "Adam", {"lr": 0.01}, "SequentialLR",
              {"schedulers": [["LinearLR", {"start_factor": 0.1, "total_iters": 5}], ["ExponentialLR", {"gamma": 0.9}]],
               "milestones": [5]}),
    SchedCase("constant then cosine", "SGD", {"lr": 0.1, "momentum": 0.9}, "SequentialLR",
              {"schedulers": [["ConstantLR", {"factor": 0.1, "total_iters": 3}], ["CosineAnnealingLR", {"T_max": 10}]],
               "milestones": [3]}),
    SchedCase("constant + exp", "RAdam", {"lr": 0.01}, "ChainedScheduler",
              {"schedulers": [["ConstantLR", {"factor": 0.5, "total_iters": 4}], ["ExponentialLR", {"gamma": 0.95}]]}),
]
SCHED_GOLDEN = DATA_DIR / "parity_schedulers.npz"


def _sched_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, dict) and set(v) == {"lambda"}:
            v = LAMBDAS[v["lambda"]]
        out[k] = v
    return out


def build_scheduler(module, opt, name: str, kwargs: dict[str, Any]):
    """Build ``module.<name>(opt, **kwargs)`` (module: torch.optim.lr_scheduler
    or fusedopt.schedules), recursively for SequentialLR / ChainedScheduler."""
    kwargs = _sched_kwargs(kwargs)
    if "schedulers" in kwargs:
        subs = [build_scheduler(module, opt, n, kw) for n, kw in kwargs.pop("schedulers")]
        if name == "ChainedScheduler":
            return getattr(module, name)(subs, **kwargs)
        return getattr(module, name)(opt, subs, **kwargs)
    return getattr(module, name)(opt, **kwargs)


def _group_hparams(group, keys) -> list[float]:
    out = [float(group["lr"])]
    for k in keys:
        v = group[k]
        out.append(float(v[0]) if isinstance(v, (tuple, list)) else float(v))
    return out


def _sched_step(sched, case: SchedCase, t: int):
    if case.metrics is not None:
        sched.step(case.metrics[t])
    else:
        sched.step()


def run_torch_sched(case: SchedCase, init, grads):
    """-> (hparams (SCHED_STEPS+1, 1+len(extra_state)), params (SCHED_STEPS+1, TOTAL))."""
    import torch

    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(torch.optim, case.optimizer)(params, **case.opt_kwargs)
    sched = build_scheduler(torch.optim.lr_scheduler, opt, case.scheduler, dict(case.sched_kwargs))
    hp = [_group_hparams(opt.param_groups[0], case.extra_state)]
    ps = [_flat([p.detach().numpy() for p in params])]
    for t, row in enumerate(grads):
        for p, g in zip(params, row):
            p.grad = None if g is None else torch.tensor(g.copy())
        opt.step()
        _sched_step(sched, case, t)
        hp.append(_group_hparams(opt.param_groups[0], case.extra_state))
        ps.append(_flat([p.detach().numpy() for p in params]))
    return np.array(hp, dtype=np.float64), np.stack(ps)


def run_fusedopt_sched(fusedopt, case: SchedCase, init, grads, backend: str = "native"):
    from fusedopt import schedules

    params = [a.copy() for a in init]
    opt = getattr(fusedopt, case.optimizer)(params, backend=backend, **case.opt_kwargs)
    sched = build_scheduler(schedules, opt, case.scheduler, dict(case.sched_kwargs))
    hp = [_group_hparams(opt.param_groups[0], case.extra_state)]
    ps = [_flat(params)]
    for t, row in enumerate(grads):
        opt.step([None if g is None else g.copy() for g in row])
        _sched_step(sched, case, t)
        hp.append(_group_hparams(opt.param_groups[0], case.extra_state))
        ps.append(_flat(params))
    return np.array(hp, dtype=np.float64), np.stack(ps)


# --------------------------------------------------------------------------
# Comparison with the suite's tolerances (defined in conftest.py, passed in).
# --------------------------------------------------------------------------
def rel_err(got, ref, rtol: float, atol: float) -> float:
    """max |got-ref| / max(|ref|, atol/rtol): the relative error where the
    rtol term of the tolerance dominates, scaled abs error elsewhere."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.size == 0:
        return 0.0
    same = (got == ref) | (np.isnan(got) & np.isnan(ref))  # also inf == inf
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.abs(got - ref) / np.maximum(np.abs(ref), atol / rtol)
    r = np.where(same, 0.0, np.where(np.isnan(r), np.inf, r))
    return float(r.max())


def close(got, ref, rtol: float, atol: float) -> bool:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    return got.shape == ref.shape and bool(np.allclose(got, ref, rtol=rtol, atol=atol, equal_nan=True))
