"""Gradient norms at both ends of float64 and float32, for every norm_type: no spurious NaN,
overflow or underflow, the native and NumPy backends agreeing with an exact computation.

Issue 13: below about 5.6e-309 the rescaling power of two overflowed to inf, so get_total_norm
returned NaN, clip_grad_norm_ wrote NaN into the gradients and a clipped step turned the
parameters into NaN; the NumPy reference raised OverflowError."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import assert_same_bits
from fusedopt import reference

TINY64 = [5e-324, 1e-320, 1e-310, 2.2250738585072014e-308, 1e-300]
HUGE64 = [1e300, 1e307, 1.7976931348623157e308]
TINY32 = [1e-45, 1e-40, 1.1754944e-38]
HUGE32 = [1e38, 3.4028235e38]
NORM_TYPES = [2.0, 1.0, 3.0, 0.5, 7.5, math.inf, -math.inf, 0.0]


def exact_norm(arrays: list[np.ndarray], p: float) -> float:
    """The p-norm from exact sums (Fractions) of the scaled |x|^p for a whole p, else from the
    fsum of the scaled float64 powers; inf where the true norm is past float64's range."""
    flat = [abs(float(v)) for a in arrays for v in np.asarray(a, np.float64).ravel()]
    if p == 0:
        return float(sum(1 for a in arrays if np.any(a != 0)))
    if not flat:
        return 0.0
    if p == math.inf:
        return max(flat)
    if p == -math.inf:
        return min(flat)
    top = max(flat)
    if top == 0:
        return 0.0
    e = math.frexp(top)[1]
    if p == int(p):
        s = float(sum(Fraction(x) ** int(p) * Fraction(2) ** (-e * int(p)) for x in flat))
    else:
        s = math.fsum((Fraction(x) * Fraction(2) ** -e).__float__() ** p for x in flat)
    try:
        return math.ldexp(s ** (1.0 / p), e)
    except OverflowError:
        return math.inf


def _arrays(magnitude: float, dtype: Any, n: int = 37) -> list[np.ndarray]:
    """Two arrays of signed values at and just below `magnitude` (some zeros among them)."""
    x = np.full(n, magnitude, dtype=dtype)
    x[::3] = -x[::3]
    x[1::5] = 0
    y = (np.full(n // 2, magnitude, dtype=np.float64) * 0.75).astype(dtype)
    return [x, y]


def _check(arrays: list[np.ndarray], p: float) -> None:
    expected = exact_norm(arrays, p)
    for backend, got in (("native", fusedopt.get_total_norm(arrays, p)),
                         ("numpy", reference.total_norm(arrays, p) if p != 0 else expected)):
        assert not math.isnan(got), (backend, p)
        if math.isinf(expected) or expected == 0:
            assert got == expected, (backend, p, got, expected)
        else:
            assert math.isclose(got, expected, rel_tol=1e-13, abs_tol=0), (backend, p, got, expected)


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
@pytest.mark.parametrize("magnitude", TINY64 + HUGE64, ids=repr)
def test_float64_norm_at_the_extremes(magnitude: float, p: float) -> None:
    _check(_arrays(magnitude, np.float64), p)


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
@pytest.mark.parametrize("magnitude", TINY32 + HUGE32, ids=repr)
def test_float32_norm_at_the_extremes(magnitude: float, p: float) -> None:
    _check(_arrays(magnitude, np.float32), p)


@pytest.mark.parametrize("p", NORM_TYPES, ids=str)
def test_mixed_magnitudes_and_dtypes(p: float) -> None:
    """The largest and smallest float64 side by side (the small ones vanish against the large,
    correctly), and float32 beside them."""
    arrays = [np.array([5e-324, -1e-310, 0.0]), np.array([1e300, -3e299]), np.array([1e-45, 3e38], np.float32)]
    _check(arrays, p)
    _check(arrays[:1], p)


def test_tiny_gradients_clip_to_themselves() -> None:
    """Norm far below max_norm: the coefficient is 1 and nothing is written (was NaN)."""
    g = [np.full(8, 1e-310), np.full(3, -5e-324)]
    before = [x.copy() for x in g]
    norm = fusedopt.clip_grad_norm_(g, 1.0)
    assert norm == pytest.approx(exact_norm(before, 2.0), rel=1e-13)
    for x, y in zip(g, before):
        assert_same_bits(x, y, "tiny grad")


def test_huge_gradients_clip_without_overflow() -> None:
    g = [np.full(4, 1e300), np.full(4, -1e300, np.float64)]
    norm = fusedopt.clip_grad_norm_(g, 1.0)
    assert norm == pytest.approx(math.sqrt(8) * 1e300, rel=1e-14)
    assert np.allclose(np.abs(np.concatenate(g)), 1 / math.sqrt(8), rtol=1e-12)


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("nonfinite", ["skip", "raise", "propagate"])
def test_clipped_step_with_tiny_gradients_steps(backend: str, nonfinite: str) -> None:
    """Adam(max_grad_norm=1, nonfinite=...) on gradients below 5.6e-309 steps like Adam without
    clipping (the norm is tiny, so the coefficient is 1); it did turn the parameters into NaN."""
    grads = [np.full(6, 1e-310), np.full(3, 2e-315)]
    clipped = [np.ones(6), np.ones(3)]
    plain = [np.ones(6), np.ones(3)]
    opt = fusedopt.Adam(clipped, lr=1e-3, max_grad_norm=1.0, nonfinite=nonfinite, backend=backend)
    ref = fusedopt.Adam(plain, lr=1e-3, backend=backend)
    opt.step(grads)
    ref.step(grads)
    assert (opt.step_count, opt.skipped_steps) == (1, 0)
    assert opt.last_grad_norm == pytest.approx(exact_norm(grads, 2.0), rel=1e-13)
    for a, b in zip(clipped, plain):
        assert np.isfinite(a).all()
        assert_same_bits(a, b, "param")


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("magnitude", [1e-310, 1e300], ids=repr)
def test_global_norm_of_per_group_norms_neither_underflows_nor_overflows(backend: str, magnitude: float) -> None:
    """With clip_scope="group" the reported global norm merges the groups' norms: their squares
    under- or overflow at these magnitudes, the merged norm must not."""
    grads = [np.full(4, magnitude), np.full(9, -magnitude)]
    opt = fusedopt.SGD([{"params": [np.ones(4)]}, {"params": [np.ones(9)]}], lr=0.0, max_grad_norm=1e308,
                       clip_scope="group", backend=backend)
    opt.step(grads)
    expected = exact_norm(grads, 2.0)
    assert opt.last_grad_norm == pytest.approx(expected, rel=1e-13)
    assert opt.last_group_grad_norms == pytest.approx([exact_norm(grads[:1], 2.0), exact_norm(grads[1:], 2.0)],
                                                      rel=1e-13)
