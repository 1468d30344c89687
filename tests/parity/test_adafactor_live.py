"""Adafactor against torch 2.13 live on shapes the golden cases do not have: 3-D and 4-D
parameters (factored per matrix of the last two dimensions), matrices cut into several chunks of
rows (so column sums merge across chunks), a tall and a wide matrix, a long vector; 25 steps,
float32 and float64, every SIMD target and the NumPy backend, parameters and every state array
(row_var, col_var, variance, step) at the parity suite's tolerances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fusedopt

from .conftest import compare_trajectory

pytestmark = pytest.mark.torch

SHAPES = ((2, 3, 4), (3, 70, 130), (2, 1, 3, 5), (9000, 2), (1, 20000), (20001,), ())
STEPS = 25
CONFIGS: list[dict[str, Any]] = [
    {},
    {"lr": 0.05, "beta2_decay": -0.5, "eps": (1e-4, 1e-2), "d": 1.5, "weight_decay": 0.1, "maximize": True},
]


def _stream(dtype: str) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(2013)
    init = [np.asarray(rng.standard_normal(s)).astype(dtype) for s in SHAPES]
    grads = [[np.asarray(rng.standard_normal(s) * rng.uniform(0.2, 2.0)).astype(dtype) for s in SHAPES]
             for _ in range(STEPS)]
    return init, grads


def _torch_run(cfg: dict[str, Any], init: list, grads: list) -> list[dict]:
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt = torch.optim.Adafactor(params, **cfg)
    snaps = []
    for row in grads:
        for p, g in zip(params, row):
            p.grad = torch.tensor(g.copy())
        opt.step()
        state = {i: {k: (int(v.item()) if k == "step" else v.detach().clone().numpy()) for k, v in opt.state[p].items()}
                 for i, p in enumerate(params)}
        snaps.append({"params": [p.detach().clone().numpy() for p in params], "state": state})
    return snaps


def _fusedopt_run(cfg: dict[str, Any], init: list, grads: list, backend: str) -> list[dict]:
    params = [a.copy() for a in init]
    opt = fusedopt.Adafactor(params, backend=backend, **cfg)
    snaps = []
    for row in grads:
        opt.step([g.copy() for g in row])
        state = {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in st.items()}
                 for k, st in opt.state.items()}
        snaps.append({"params": [p.copy() for p in params], "state": state})
    return snaps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=["default", "all-options"])
def test_adafactor_nd_matches_torch(cfg: dict[str, Any], dtype: str, impl: Any) -> None:
    init, grads = _stream(dtype)
    ref = _torch_run(cfg, init, grads)
    got = _fusedopt_run(cfg, init, grads, impl.backend)
    compare_trajectory(got, ref, dtype, f"Adafactor {cfg} {dtype} [{impl.id}]", suite="live", first_step=1)
