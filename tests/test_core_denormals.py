"""Denormal numbers: flushed to zero inside the step's kernels by default (FTZ and DAZ on the
threads running them, the caller's mode untouched), kept with set_flush_denormal(False), where the
step equals the NumPy reference bit for bit."""

from __future__ import annotations

from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    OPTIMIZERS,
    RICH_CONFIGS,
    SUPPORTED_TARGETS,
    Pair,
    copies,
    flushing,
    make_params,
    state_arrays,
    using_target,
    using_threads,
)

# A denormal of each dtype, well inside the range (float32's smallest normal is 1.2e-38,
# float64's 2.2e-308).
DENORMAL = {np.float32: 1e-42, np.float64: 1e-310}
SHAPES = [(1000,), (3, 7), (17,)]


def subnormal(a: np.ndarray) -> np.ndarray:
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


def test_flush_is_on_by_default_and_reported() -> None:
    assert fusedopt.get_flush_denormal() is True
    assert fusedopt.runtime_info()["flush_denormal"] is True
    with flushing(False):
        assert fusedopt.runtime_info()["flush_denormal"] is False


@pytest.mark.parametrize("bad", ["yes", 1, None, np.array([True])])
def test_set_flush_denormal_takes_a_bool(bad: Any) -> None:
    with pytest.raises(TypeError, match="on must be a bool"):
        fusedopt.set_flush_denormal(bad)
    assert fusedopt.get_flush_denormal() is True


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_flushing_reads_denormal_gradients_as_zero(name: str, dtype: Any, threads: int) -> None:
    """DAZ: a step with denormal gradients equals a step with zero gradients (values compared
    with -0 == 0), and nothing written is denormal."""
    params = make_params(SHAPES, dtype, 5)
    tiny = [np.full(s, DENORMAL[dtype], dtype) for s in SHAPES]
    zero = [np.zeros(s, dtype) for s in SHAPES]
    with using_threads(threads, 0):
        a = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name])
        b = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name])
        for _ in range(3):
            a.step(tiny)
            b.step(zero)
    for (label, x), (_, y) in zip(state_arrays(a) + list(enumerate(a.params)), state_arrays(b) + list(enumerate(b.params))):
        np.testing.assert_array_equal(x, y, err_msg=f"{name} {label}")
        assert not subnormal(x).any(), f"{name} {label} holds denormals"


def _stuck_moments(name: str, dtype: Any, zero_steps: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Real gradients, then zero gradients until the moments decay through the denormals."""
    params = make_params(SHAPES, dtype, 6)
    rng = np.random.default_rng(7)
    real = [(rng.standard_normal(s) * 1e-3).astype(dtype) for s in SHAPES]
    zero = [np.zeros(s, dtype) for s in SHAPES]
    return params, [real] * 3 + [zero] * zero_steps  # type: ignore[return-value]


@pytest.mark.parametrize("target_name", SUPPORTED_TARGETS)
def test_a_decaying_moment_leaves_no_denormal(target_name: str) -> None:
    """Adam after a dead unit: in float32, exp_avg * 0.9 per step passes 1e-38 after ~800
    steps. Kept, it sticks at the smallest denormals (every later step slow). Flushed, it never
    becomes denormal: with FMA (x + 0.1 * (0 - x) rounded once) it drops to 0; without, the
    decrement 0.1 * x underflows to 0 first, so x stays near 1e-37, a normal number."""
    params, stream = _stuck_moments("Adam", np.float32, 1200)
    with using_target(target_name), flushing(True):
        opt = fusedopt.Adam(copies(params), lr=1e-3)
        for g in stream:
            opt.step(g)
    exp_avg = [x for label, x in state_arrays(opt) if "exp_avg" in label and "sq" not in label]
    assert exp_avg and all((np.abs(x) < 1e-36).all() for x in exp_avg), "exp_avg did not decay"
    for label, x in state_arrays(opt):
        assert not subnormal(x).any(), label
    with flushing(False):
        kept = fusedopt.Adam(copies(params), lr=1e-3)
        for g in stream:
            kept.step(g)
    assert any(subnormal(x).any() for _, x in state_arrays(kept)), "the scenario should reach denormals"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_keeping_denormals_equals_the_reference_bitwise(name: str, dtype: Any, baseline_target: str) -> None:
    """Kept, denormal gradients and state go through the kernels exactly as through NumPy."""
    params, stream = _stuck_moments(name, dtype, 40)
    tiny = [np.full(s, DENORMAL[dtype], dtype) for s in SHAPES]
    with flushing(False):
        pair = Pair(OPTIMIZERS[name], params, RICH_CONFIGS[name])
        for g in stream[:3] + [tiny] * 5 + stream[3:]:
            pair.step(g)
        pair.assert_bitwise()


@pytest.mark.parametrize("threads", [1, 2])
def test_the_callers_floating_point_mode_is_untouched(threads: int) -> None:
    """After a flushing step NumPy on this thread still produces denormals."""
    params = make_params([(200000,)], np.float32, 1)
    with using_threads(threads, 0), flushing(True):
        fusedopt.SGD(params, lr=0.1, momentum=0.9).step([np.full(200000, 1e-42, np.float32)])
    half = np.float32(1e-38) * np.float32(0.5)
    assert 0 < half < np.finfo(np.float32).tiny


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["Lamb", "LARS"])
def test_flushing_reads_denormal_parameters_as_zero_in_reductions(name: str, threads: int) -> None:
    """The reduction passes run flushed too: a parameter of denormals has norm 0 there (LAMB's
    and LARS's trust ratio 1), as in the update, so the step equals one from zero parameters.
    Read unflushed, the norm of 1200 values of 1e-39 is a normal float32 (3.5e-38) and the trust
    ratio shrinks the update to nothing."""
    shapes = [(40, 30), (9000, 2), (5,)]  # one chunk, several chunks, a 1-D array
    rng = np.random.default_rng(8)
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    with using_threads(threads, 0), flushing(True):
        a = OPTIMIZERS[name]([np.full(s, 1e-39, np.float32) for s in shapes], lr=1e-2)
        b = OPTIMIZERS[name]([np.zeros(s, np.float32) for s in shapes], lr=1e-2)
        for g in grads:
            a.step(g)
            b.step(g)
    for (label, x), (_, y) in zip(state_arrays(a) + list(enumerate(a.params)), state_arrays(b) + list(enumerate(b.params))):
        np.testing.assert_array_equal(x, y, err_msg=f"{name} {label}")
