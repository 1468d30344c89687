"""The rule contract's per-array reductions and slot shapes (rule.hpp, docs/reductions.md), beyond
what the generic tables (test_core_parity, test_core_threads, test_core_state, test_bad_inputs)
already check for every optimizer that uses them."""

from __future__ import annotations

import fusedopt
import ml_dtypes
import numpy as np
import pytest
from conftest import (
    OPTIMIZERS,
    SUPPORTED_TARGETS,
    assert_snapshot_equal,
    make_grad_stream,
    make_params,
    snapshot,
    using_target,
    using_threads,
)
from fusedopt import _core, reference

REDUCING = [n for n in OPTIMIZERS if _core.rule_info(OPTIMIZERS[n].rule)["reduce_passes"]]


def square_sums(a: np.ndarray) -> list[float]:
    """The sums of squares of the norm's chunks of `a` (what its 2-norm is the square root of)."""
    parts: list[np.ndarray] = []
    _core.shard_norm([a], a.size, 0, lambda p: parts.append(p[0].copy()))
    return parts[0].tolist()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, ml_dtypes.bfloat16, np.float16], ids=lambda d: np.dtype(d).name)
def test_sums_of_squares_have_the_same_bits_on_every_target(dtype: type) -> None:
    """Sums of squares (kernels/lane_sum.hpp, Lanes: element i of a run to lane i % 32, each
    square added with one rounding; gradient norms, LARS', LAMB's and Adafactor's reductions) are
    one float64 on every target, whatever its vector code (AVX2: pairs of four lanes; a fused
    multiply-add only where the square is exact). Widely spread magnitudes, so the order of the
    additions shows in the last bits, and values near 1, where a float64 square's rounding does;
    whole blocks of 32, tails. The sums are compared before their square root (which can hide a
    last bit). 16-bit arrays (widened 8 at a time) sum to the bits of their float32 copies'."""
    rng = np.random.default_rng(5)
    sizes = (31, 32, 33, 100, 1037, 70_000)
    spread = 4 if np.dtype(dtype).itemsize >= 4 else 2  # (float16 overflows past 65504)
    arrays = [(rng.standard_normal(n) * 10.0 ** rng.uniform(-spread, spread, n)).astype(dtype) for n in sizes]
    arrays += [rng.uniform(0.5, 2.0, n).astype(dtype) for n in (1037, 70_000)]

    def figures(arrays: list[np.ndarray]) -> list[object]:
        return [fusedopt.get_total_norm(arrays, 2.0)] + [(fusedopt.get_total_norm([a], 2.0), square_sums(a)) for a in arrays]

    norms = {}
    for target in SUPPORTED_TARGETS:
        with using_target(target):
            norms[target] = figures(arrays)
            if np.dtype(dtype).itemsize == 2:
                assert norms[target] == figures([a.astype(np.float32) for a in arrays]), target
    for target in SUPPORTED_TARGETS:
        assert norms[target] == norms["baseline"], target


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_dot_products_have_the_reference_bits_on_every_target(dtype: type) -> None:
    """LBFGS's dot (kernels/lane_dot.hpp: products rounded, summed in the dtype in 32 lanes per
    chunk of 65536, chunks in order, lanes added as a tree) is reference.lane_dot's value on every
    target and at 1 or 2 threads, so a run has the same bits on every CPU (a BLAS dot's order is
    the CPU's). Widely spread magnitudes of both signs, so the order shows in the last bits; whole
    blocks of 32, tails, empty, one chunk and several; signed zeros, inf and NaN."""
    rng = np.random.default_rng(8)
    sizes = (0, 1, 2, 3, 31, 32, 33, 100, 1037, 65_536, 70_000, 200_003)
    pairs = [tuple((rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(dtype) for _ in "xy")
             for n in sizes]
    t = np.dtype(dtype).type
    pairs += [(np.array([-0.0, -0.0], dtype), np.array([1.0, 2.0], dtype)),
              (np.array([-0.0], dtype), np.array([3.0], dtype)),
              (np.array([1.0, np.inf, 2.0], dtype), np.array([1.0, 1.0, 2.0], dtype)),
              (np.array([np.inf, 1.0], dtype), np.array([0.0, 1.0], dtype)),
              (np.full(40, t(1.0)), np.where(np.arange(40) == 35, t(np.nan), t(1.0)))]
    want = [reference.lane_dot(x, y) for x, y in pairs]
    assert all(type(w) is t for w in want)
    assert want[0] == 0 and want[2] == pairs[2][0][0] * pairs[2][1][0] + pairs[2][0][1] * pairs[2][1][1]
    assert [np.signbit(w) for w in want[-5:-3]] == [False, False]  # lanes summed from +0
    assert np.isposinf(want[-3]) and np.isnan(want[-2]) and np.isnan(want[-1])
    for target in SUPPORTED_TARGETS:
        for threads in (1, 2):
            with using_target(target), using_threads(threads, 0):
                got = [_core.lane_dot(x, y) for x, y in pairs]
            assert [t(g).tobytes() for g in got] == [w.tobytes() for w in want], (target, threads)
    one_run = reference._row_sums(np.multiply(*pairs[11]).reshape(1, -1))[0]  # 200_003: 4 chunks
    assert want[11] != one_run  # (the chunks' order shows)


def test_dot_refuses_what_it_cannot_read() -> None:
    x = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="y: dtype float64 differs from x's float32"):
        _core.lane_dot(x, np.ones(4))
    with pytest.raises(ValueError, match="y: 5 elements, x has 4"):
        _core.lane_dot(x, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="expected 1-D arrays"):
        _core.lane_dot(x.reshape(2, 2), x.reshape(2, 2))
    with pytest.raises(ValueError, match=r"y: must be C-contiguous \(pass numpy.ascontiguousarray of it\)"):
        _core.lane_dot(x[:2], np.ones(4, np.float32)[::2])


@pytest.mark.parametrize("name", REDUCING)
def test_many_chunks_bitwise_across_thread_counts(name: str) -> None:
    """Arrays of several reduction chunks (8192 elements; whole rows), one of more than 256
    chunks' worth (the chunks grow), and small ones taken whole (fused: passes and update on one
    thread, partials of different widths), forced parallel: the same bits at 1, 2 and 3 threads."""
    shapes = [(3, 70, 130), (9000, 2), (2 * 8192 * 256 + 77,), (5,), (1, 4000), (64, 100), (7, 3), (8192,)]
    params = make_params(shapes, np.float32, 5)
    grads = make_grad_stream(shapes, np.float32, 2, 6)
    runs = []
    for n in (1, 2, 3):
        with using_threads(n, 0):
            opt = OPTIMIZERS[name]([p.copy() for p in params], lr=1e-3)
            for g in grads:
                opt.step(g)
        runs.append(snapshot(opt))
    for r in runs[1:]:
        assert_snapshot_equal(r, runs[0])


@pytest.mark.parametrize("name", REDUCING)
def test_sharded_optimizer_refuses_rules_over_whole_arrays(name: str) -> None:
    from fusedopt.distributed import ShardedOptimizer

    with pytest.raises(TypeError, match="whole arrays"):
        ShardedOptimizer(OPTIMIZERS[name]([np.ones((3, 4), np.float32)]))
