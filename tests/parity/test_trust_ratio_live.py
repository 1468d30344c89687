"""LAMB and LARS against pytorch_optimizer's ``Lamb`` and ``LARS`` (the reference packages the
issue names; test-only dependency), run live: 30 steps, float32 and float64, every SIMD target
and the NumPy backend, parameters and every state array after every step, at the parity suite's
tolerances (conftest.py). pytorch_optimizer counts steps per group and keeps per-step
diagnostics (Lamb's weight_norm, adam_norm, trust_ratio), which are not optimizer state here:
fusedopt's per-parameter 'step' is compared with its group's count instead, and the
diagnostics are left out. Every parameter gets a gradient every step (with None gradients the
two count steps differently: fusedopt per parameter, as torch.optim does)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

import fusedopt

from .conftest import compare_trajectory

pytestmark = pytest.mark.torch

SHAPES = ((3, 2), (3,), (1, 3), (), (17,), (4, 5, 6), (2100,))
STEPS = 30
DIAGNOSTICS = ("weight_norm", "adam_norm", "trust_ratio")

# (fusedopt class, pytorch_optimizer class, desc, kwargs (the same for both))
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("Lamb", "Lamb", "default", {}),
    ("Lamb", "Lamb", "lr weight_decay", {"lr": 1e-2, "weight_decay": 0.1}),
    ("Lamb", "Lamb", "coupled weight_decay", {"lr": 1e-2, "weight_decay": 0.1, "weight_decouple": False}),
    ("Lamb", "Lamb", "fixed_decay no averaging", {"lr": 1e-2, "weight_decay": 0.01, "fixed_decay": True,
                                                  "grad_averaging": False}),
    ("Lamb", "Lamb", "adam betas eps", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-8, "adam": True}),
    ("Lamb", "Lamb", "adam_debias maximize", {"lr": 1e-2, "adam_debias": True, "maximize": True}),
    ("LARS", "LARS", "default", {}),
    ("LARS", "LARS", "weight_decay nesterov", {"lr": 1e-2, "weight_decay": 0.1, "nesterov": True}),
    ("LARS", "LARS", "dampening trust maximize", {"lr": 1e-2, "momentum": 0.5, "dampening": 0.3,
                                                   "trust_coefficient": 0.02, "weight_decay": 0.01, "maximize": True}),
    ("LARS", "LARS", "no momentum", {"lr": 0.1, "momentum": 0.0, "weight_decay": 0.1}),
]


def _stream(seed: int, dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    init = [np.asarray(rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    grads = [[np.asarray(rng.standard_normal(s) * rng.uniform(0.2, 2.0)).astype(dtype) for s in SHAPES]
             for _ in range(STEPS)]
    return init, grads


def _run_reference(cls: str, kwargs: dict[str, Any], init: list, grads: list) -> list[dict]:
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = getattr(pytorch_optimizer, cls)(params, **kwargs)
    snaps = []
    for row in grads:
        for p, g in zip(params, row):
            p.grad = torch.tensor(g.copy())
        opt.step()
        state = {}
        for i, p in enumerate(params):
            st = {k: v.detach().clone().numpy() for k, v in opt.state[p].items()
                  if k not in DIAGNOSTICS and torch.is_tensor(v)}
            if st:
                state[i] = st
        snaps.append({"params": [p.detach().clone().numpy() for p in params], "state": state,
                      "step": opt.param_groups[0]["step"]})
    return snaps


def _run_fusedopt(cls: str, kwargs: dict[str, Any], init: list, grads: list, backend: str) -> list[dict]:
    params = [a.copy() for a in init]
    opt = getattr(fusedopt, cls)(params, backend=backend, **kwargs)
    snaps = []
    for row in grads:
        opt.step([g.copy() for g in row])
        state = {}
        steps = set()
        for key, st in opt.state.items():
            steps.update(v for k, v in st.items() if k == "step")
            arrays = {k: v.copy() for k, v in st.items() if isinstance(v, np.ndarray)}
            if arrays:
                state[key] = arrays
        snaps.append({"params": [p.copy() for p in params], "state": state, "steps": steps})
    return snaps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2].replace(' ', '_')}")
def test_matches_pytorch_optimizer(case: tuple, dtype: str, impl: Any) -> None:
    cls, ref_cls, desc, kwargs = case
    init, grads = _stream(sum(map(ord, cls + desc)), dtype)
    ref = _run_reference(ref_cls, kwargs, init, grads)
    got = _run_fusedopt(cls, kwargs, init, grads, impl.backend)
    for t, (g, r) in enumerate(zip(got, ref), start=1):
        if getattr(fusedopt, cls).has_step:
            assert g["steps"] == {r["step"]} == {t}, f"step {t}: 'step' {g['steps']} vs group step {r['step']}"
    compare_trajectory(got, ref, dtype, f"{cls} {desc} {dtype} [{impl.id}]", suite="pytorch_optimizer", first_step=1)
