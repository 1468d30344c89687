"""Muon against torch.optim.Muon 2.13: the parameters, gradient stream and configurations, both
runs, the bound on the parameters, and the golden file.

Used by ``tests/test_muon.py`` (live, torch importable), ``tools/make_parity_golden.py``
(torch -> ``tests/data/parity_muon.npz``) and ``test_lbfgs_muon_golden.py`` (fusedopt against
that file, no torch). The file keeps torch's parameters after the last of the STEPS steps, per
configuration and dtype, its momentum buffers per momentum and dtype, and a CRC of the inputs
(regenerated from seeds).

``ns_dtype="float32"`` has no torch counterpart; its golden run is torch's Muon with
``Tensor.bfloat16`` made a float32 no-op, which is torch's iteration without the bfloat16
rounding (what fusedopt's option computes, up to BLAS summation order).
"""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Iterator
from typing import Any

import ml_dtypes
import numpy as np

from .cases import DATA_DIR

GOLDEN_PATH = DATA_DIR / "parity_muon.npz"
SHAPES = [(3, 5), (6, 2), (17, 9), (1, 4), (33, 40)]
STEPS = 25
DTYPES = ("float32", "float64")
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "no-nesterov": {"nesterov": False},
    "match_rms_adamw": {"adjust_lr_fn": "match_rms_adamw", "lr": 0.02},
    "original": {"adjust_lr_fn": "original", "lr": 0.05, "weight_decay": 0.5},
    "low-momentum": {"momentum": 0.3, "weight_decay": 0.0},
    "ns": {"ns_steps": 3, "eps": 1e-3, "ns_coefficients": (2.0, -1.5, 0.5)},
}
# The golden file's cases: every configuration, and the float32 Newton-Schulz option (two).
GOLDEN_CONFIGS: dict[str, dict[str, Any]] = {
    **CONFIGS,
    "float32-ns": {"ns_dtype": "float32"},
    "float32-ns-match_rms_adamw": {"ns_dtype": "float32", "adjust_lr_fn": "match_rms_adamw", "lr": 0.02},
}
BF16_ULP = 2.0**-8  # of a value in [1, 2)
# Per step, how far an orthogonalized element may be from torch's, in units of the largest
# one (~1): two bfloat16 ulps (test_muon.py says why); float32: the BLAS order of the float32
# sums, measured 2e-6 for one orthogonalization (test_muon.py), with a margin of 4x.
NS_STEP_ERROR = {"bfloat16": 2 * BF16_ULP, "float32": 8e-6}


def stream(dtype: type, steps: int = STEPS, seed: int = 0) -> tuple[list[np.ndarray], list[list[np.ndarray | None]]]:
    """Parameters and gradients; parameter 3 gets no gradient before step 4, parameter 1
    none at step 9, and step 6 has none at all."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads: list[list[np.ndarray | None]] = []
    for i in range(steps):
        gs: list[np.ndarray | None] = [rng.standard_normal(s).astype(dtype) * (1 + i % 3) for s in SHAPES]
        if i < 3:
            gs[3] = None
        if i == 8:
            gs[1] = None
        if i == 5:
            gs = [None] * len(SHAPES)
        grads.append(gs)
    return init, grads


def inputs_crc(dtype: str) -> int:
    init, grads = stream(np.dtype(dtype).type)
    crc = 0
    for a in init + [g for row in grads for g in row if g is not None]:
        crc = zlib.crc32(a.tobytes(), crc)
    return crc


def param_bounds(config: dict[str, Any], grads: list[list[np.ndarray | None]], steps: int, dtype: type) -> list[float]:
    """How far each parameter may be from torch's after `steps` steps: per step the parameter
    had a gradient, the error of an orthogonalized element times the adjusted lr, plus one ulp
    of the parameter's elements (|p| < 8 here), where that error tips the update's rounding (it
    matters for float32 parameters under the float32 option: 2e-8 of error, 2.4e-7 per ulp)."""
    from fusedopt.optim.muon import adjusted_lr

    per_step = NS_STEP_ERROR[config.get("ns_dtype", "bfloat16")]
    ulp = 4 * float(ml_dtypes.finfo(dtype).eps)  # (NumPy's finfo knows bfloat16 only with some ml_dtypes)
    lr = config.get("lr", 1e-3)
    return [sum(per_step * adjusted_lr(lr, config.get("adjust_lr_fn"), shape) + ulp
                for row in grads[:steps] if row[i] is not None)
            for i, shape in enumerate(SHAPES)]


@contextlib.contextmanager
def _float32_newton_schulz(torch: Any, on: bool) -> Iterator[None]:
    saved = torch.Tensor.bfloat16
    if on:
        torch.Tensor.bfloat16 = lambda self: self.float()
    try:
        yield
    finally:
        torch.Tensor.bfloat16 = saved


def run_torch(torch: Any, config: dict[str, Any], dtype: type) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """torch's parameters and momentum buffers (None: no state) after STEPS steps."""
    kw = {k: v for k, v in config.items() if k != "ns_dtype"}
    init, grads = stream(dtype)
    tparams = [torch.from_numpy(p.copy()) for p in init]
    opt = torch.optim.Muon(tparams, **kw)
    with _float32_newton_schulz(torch, config.get("ns_dtype") == "float32"):
        for gs in grads:
            for tp, g in zip(tparams, gs):
                tp.grad = None if g is None else torch.from_numpy(g.copy())
            opt.step()
    bufs = [opt.state[p]["momentum_buffer"].numpy().copy() if "momentum_buffer" in opt.state.get(p, {}) else None
            for p in tparams]
    return [p.numpy().copy() for p in tparams], bufs


def golden_arrays(torch: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    meta = {"torch": torch.__version__, "steps": STEPS, "crc": {d: inputs_crc(d) for d in DTYPES}}
    out["__meta__"] = np.array(json.dumps(meta))
    for name, config in GOLDEN_CONFIGS.items():
        for dt in DTYPES:
            params, bufs = run_torch(torch, config, getattr(np, dt))
            for i, (p, b) in enumerate(zip(params, bufs)):
                out[f"{name}-{dt}/p{i}"] = p
                if b is not None:  # the same for every config of that momentum: kept once
                    out[buffer_key(config, dt, i)] = b
    return out


def buffer_key(config: dict[str, Any], dtype: str, i: int) -> str:
    """The buffers depend on the gradients and the momentum only."""
    return f"momentum={config.get('momentum', 0.95)}-{dtype}/p{i}.momentum_buffer"
