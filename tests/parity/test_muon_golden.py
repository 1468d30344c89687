"""Muon against torch 2.13's parameters and momentum buffers stored in
tests/data/parity_muon.npz (muon_cases.py; no torch needed), after 25 steps of every
configuration, float32 and float64, bfloat16 Newton-Schulz and the float32 option, on every
SIMD target and the NumPy backend:

* the momentum buffers: bit for bit on the FMA targets (torch's lerp fuses as they do), at
  the parity suite's tolerances on the baseline target and the NumPy backend (lerp rounded
  twice);
* the parameters: within ``muon_cases.param_bounds`` of torch's (per step, two bfloat16 ulps
  of a unit update times the adjusted lr, as the live test (test_muon.py) bounds them; for the
  float32 option 8e-6 in place of the two ulps; plus one ulp of the parameter).
"""

from __future__ import annotations

import functools
import json

import fusedopt
import numpy as np
import pytest

from . import muon_cases as mc
from .cases import close, rel_err
from .conftest import TOLERANCES, record_error

CASES = [pytest.param(name, dt, id=f"{name}-{dt}") for name in mc.GOLDEN_CONFIGS for dt in mc.DTYPES]


@functools.cache
def _golden() -> dict[str, np.ndarray]:
    if not mc.GOLDEN_PATH.exists():
        pytest.fail(f"{mc.GOLDEN_PATH} is missing: run `python tools/make_parity_golden.py`")
    with np.load(mc.GOLDEN_PATH) as data:
        meta = json.loads(str(data["__meta__"]))
        assert meta["steps"] == mc.STEPS, "stale: run tools/make_parity_golden.py"
        for dt, crc in meta["crc"].items():
            assert crc == mc.inputs_crc(dt), "the Muon gradient stream changed: run tools/make_parity_golden.py"
        return {k: data[k] for k in data.files}


def test_golden_covers_the_cases() -> None:
    want = {f"{name}-{dt}/p{i}" for name in mc.GOLDEN_CONFIGS for dt in mc.DTYPES for i in range(len(mc.SHAPES))}
    want |= {mc.buffer_key(c, dt, i) for c in mc.GOLDEN_CONFIGS.values() for dt in mc.DTYPES for i in range(len(mc.SHAPES))}
    assert set(_golden()) - {"__meta__"} == want


@pytest.mark.parametrize("name, dt", CASES)
def test_matches_torch_golden(name: str, dt: str, impl) -> None:
    config = mc.GOLDEN_CONFIGS[name]
    golden = _golden()
    init, grads = mc.stream(getattr(np, dt))
    params = [p.copy() for p in init]
    opt = fusedopt.Muon(params, backend=impl.backend, **config)
    for gs in grads:
        opt.step(gs)
    bounds = mc.param_bounds(config, grads, mc.STEPS, getattr(np, dt))
    exact = impl.backend == "native" and impl.target != "baseline"
    rtol, atol = TOLERANCES[dt]
    worst = (0.0, "")
    for i, (p, bound) in enumerate(zip(params, bounds)):
        want = golden[f"{name}-{dt}/p{i}"]
        assert p.dtype == want.dtype and p.shape == want.shape
        diff = float(np.max(np.abs(p.astype(np.float64) - want)))
        assert diff <= bound, f"param {i}: {diff:.3g} from torch's > {bound:.3g}"
        buf = opt.state[i]["momentum_buffer"]
        want_buf = golden[mc.buffer_key(config, dt, i)]
        if exact:
            assert buf.tobytes() == want_buf.tobytes(), f"param {i}: momentum_buffer not torch's bits"
        else:
            worst = max(worst, (rel_err(buf, want_buf, rtol, atol), f"{name}-{dt} [{impl.id}] buffer {i}"))
            assert close(buf, want_buf, rtol, atol), f"param {i}: momentum_buffer differs from torch's"
    record_error("muon golden", dt, *worst)
