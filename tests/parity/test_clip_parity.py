"""Gradient clipping: fusedopt.clip_grad_norm_ / clip_grad_value_ / get_total_norm
against torch.nn.utils (golden data; live too when torch is importable), and the
in-optimizer ``max_grad_norm=`` against clip-then-step."""

from __future__ import annotations

import functools
import importlib.util
import math

import fusedopt
import numpy as np
import pytest

from . import cases
from .conftest import TOLERANCES, record_error

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@functools.cache
def _golden():
    if not cases.CLIP_GOLDEN.exists():
        pytest.fail(f"{cases.CLIP_GOLDEN} is missing: run `python tools/make_parity_golden.py`")
    with np.load(cases.CLIP_GOLDEN) as data:
        return {k: data[k] for k in data.files}


def _split(flat: np.ndarray) -> list[np.ndarray]:
    out, at = [], 0
    for s in cases.CLIP_SHAPES:
        n = int(np.prod(s, dtype=np.int64))
        out.append(flat[at : at + n].reshape(s).copy())
        at += n
    return out


def _check(case: cases.ClipCase, got_norm, got, ref_norm, ref, suite: str):
    rtol, atol = TOLERANCES[case.dtype]
    for i, (g, r) in enumerate(zip(got, ref)):
        assert g.dtype == np.dtype(case.dtype), f"{case.id}: grad {i} changed dtype to {g.dtype}"
        err = cases.rel_err(g, r, rtol, atol)
        record_error(suite, case.dtype, err, f"{case.id} grad {i}")
        assert cases.close(g, r, rtol, atol), (
            f"{case.id}: clipped grad {i} differs from torch: rel err {err:.3g}\nfusedopt {g}\ntorch    {r}"
        )
    if ref_norm is not None:
        # torch returns the norm as a tensor of the gradients' dtype: compare at that precision
        err = cases.rel_err(got_norm, ref_norm, rtol, atol)
        record_error(suite, case.dtype, err, f"{case.id} norm")
        assert cases.close(got_norm, ref_norm, rtol, atol), f"{case.id}: norm {got_norm!r}, torch {ref_norm!r}"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in cases.CLIP_CASES])
def test_clip_matches_torch_golden(case, target):
    data = _golden()
    if f"{case.id}.out" not in data:
        pytest.fail(f"no golden data for {case.id}: run tools/make_parity_golden.py")
    grads = _split(data[f"{case.id}.grads"])
    for a, b in zip(grads, case.grads()):
        np.testing.assert_array_equal(a, b)  # same stream as cases.py (else: regenerate)
    ref_norm = float(data[f"{case.id}.norm"])
    norm, got = cases.run_fusedopt_clip(fusedopt, case, grads)
    _check(case, norm, got, None if case.fn == "clip_grad_value_" else ref_norm, _split(data[f"{case.id}.out"]), "golden")


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in cases.CLIP_CASES])
def test_clip_matches_torch_live(case, target):
    grads = case.grads()
    ref_norm, ref = cases.run_torch_clip(case, grads)
    norm, got = cases.run_fusedopt_clip(fusedopt, case, grads)
    _check(case, norm, got, ref_norm, ref, "live")


@pytest.mark.parametrize("dtype", cases.DTYPES)
@pytest.mark.parametrize("poison", [math.inf, math.nan])
def test_clip_error_if_nonfinite_raises_runtimeerror_like_torch(dtype, poison, target):
    grads = [np.ones((3,), dtype), np.array([1.0, poison], dtype)]
    before = [g.copy() for g in grads]
    with pytest.raises(RuntimeError, match="non-finite"):
        fusedopt.clip_grad_norm_(grads, 1.0, error_if_nonfinite=True)
    for g, b in zip(grads, before):
        np.testing.assert_array_equal(g, b)  # torch raises before scaling anything


@pytest.mark.parametrize("clip", [{"max_grad_norm": 0.5}, {"clip_value": 0.3}], ids=["max_grad_norm", "clip_value"])
@pytest.mark.parametrize("dtype", cases.DTYPES)
def test_in_optimizer_clipping_equals_clip_then_step(clip, dtype, impl):
    """``Adam(..., max_grad_norm=c)`` is ``clip_grad_norm_(grads, c)`` then ``step`` (and
    likewise ``clip_value``), over a stream with None gradients.  Both sides are fusedopt,
    so this holds to the suite's tolerance (the fused path may round the scale once)."""
    init, grads = cases.make_stream(cases._seed(f"clip-step-{dtype}"), dtype)
    rtol, atol = TOLERANCES[dtype]
    p_fused = [a.copy() for a in init]
    p_plain = [a.copy() for a in init]
    fused = fusedopt.Adam(p_fused, lr=0.01, backend=impl.backend, **clip)
    plain = fusedopt.Adam(p_plain, lr=0.01, backend=impl.backend)
    for t, row in enumerate(grads):
        fused.step([None if g is None else g.copy() for g in row])
        present = [g.copy() for g in row if g is not None]
        if present:
            if "max_grad_norm" in clip:
                fusedopt.clip_grad_norm_(present, clip["max_grad_norm"])
            else:
                fusedopt.clip_grad_value_(present, clip["clip_value"])
        it = iter(present)
        plain.step([None if g is None else next(it) for g in row])
        for i, (a, b) in enumerate(zip(p_fused, p_plain)):
            assert cases.close(a, b, rtol, atol), f"step {t + 1} param {i}: {a} vs {b}"
