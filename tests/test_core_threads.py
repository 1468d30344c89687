"""Thread counts do not change results, and a big step runs without the GIL.

Each parallel step cuts the concatenated element range of all its arrays into one slice per
thread (cache-line aligned inside each array), and the gradient-norm pass sums a fixed grid of
chunks whatever the thread count, so every optimizer must give bit-identical parameters and
state at 1, 2, 3 and 4 threads (3 and 4 oversubscribe this 2-core machine, which is allowed).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    OPTIMIZERS,
    RICH_CONFIGS,
    assert_snapshot_equal,
    at_phase,
    copies,
    make_grad_stream,
    make_params,
    snapshot,
    using_threads,
)
from fusedopt import _core

pytestmark = pytest.mark.skipif(not fusedopt.runtime_info()["openmp"], reason="built without OpenMP")

THREAD_COUNTS = (1, 2, 3, 4)
# Many arrays of mixed sizes in one group, sizes chosen so that the per-thread cut points land
# inside arrays, next to array ends, and on 0-d / tiny arrays; forced parallel (min size 0).
MANY_SHAPES = [(), (1,), (17,), (1000,), (3, 5), (0,), (4097,), (31,), (2, 333), (16,), (1500,)]
BIG_SHAPES = [(100003,), (5,), (70001,)]  # over the default minimum parallel size (65536)


def _run(name: str, cfg: dict[str, Any], shapes: list, dtype: Any, steps: int, threads: int,
         min_parallel: int | None, **options: Any) -> dict:
    params = make_params(shapes, dtype, 3)
    grads = make_grad_stream(shapes, dtype, steps, 4)
    with using_threads(threads, min_parallel):
        opt = OPTIMIZERS[name](copies(params), **cfg, **options)
        for g in grads:
            opt.step(g)
    return snapshot(opt)


@pytest.mark.parametrize("clip", [None, "norm"], ids=["noclip", "max_grad_norm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_many_arrays_forced_parallel_bitwise_across_thread_counts(name: str, dtype: Any, clip: str | None) -> None:
    options = {"max_grad_norm": 5.0} if clip else {}
    runs = {n: _run(name, RICH_CONFIGS[name], MANY_SHAPES, dtype, 4, n, 0, **options) for n in THREAD_COUNTS}
    for n in THREAD_COUNTS[1:]:
        assert_snapshot_equal(runs[n], runs[1], f"{name} at {n} threads vs 1: ")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_large_arrays_default_threshold_bitwise_across_thread_counts(name: str, target: str) -> None:
    assert _core.get_min_parallel_elements() <= BIG_SHAPES[0][0]
    runs = {n: _run(name, RICH_CONFIGS[name], BIG_SHAPES, np.float32, 2, n, None, max_grad_norm=50.0)
            for n in THREAD_COUNTS}
    for n in THREAD_COUNTS[1:]:
        assert_snapshot_equal(runs[n], runs[1], f"{name} [{target}] at {n} threads vs 1: ")


# Long enough for the first piece to be cut at the parameter's first cache line (segments.hpp,
# kPeelMinElements), with vector tails; shorter ones that never are (their state starts a line).
PHASE_SHAPES = [(5003,), (3,), (1500,), (1000,), (4097,)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_where_arrays_start_on_their_cache_lines_changes_nothing(name: str, dtype: Any, target: str) -> None:
    """A step cuts each parameter at its first cache line (Segment::lead), so how the range is
    cut follows where the arrays start; the results must not: parameters at several phases of a
    cache line (their new state placed to match), gradients at another, 1 and 3 threads forced
    parallel, all bitwise equal."""
    params = make_params(PHASE_SHAPES, dtype, 5)
    grads = make_grad_stream(PHASE_SHAPES, dtype, 3, 6)
    item = np.dtype(dtype).itemsize
    runs = {}
    for phase in (0, item, 16, 36 // item * item, 64 - item):
        for threads in (1, 3):
            with using_threads(threads, 0):
                opt = OPTIMIZERS[name]([at_phase(p, phase) for p in params], **RICH_CONFIGS[name])
                for row in grads:
                    opt.step([at_phase(g, (phase + 16) % 64) for g in row])
            runs[(phase, threads)] = snapshot(opt)
    for key, run in runs.items():
        assert_snapshot_equal(run, runs[(0, 1)], f"{name} [{target}] parameters at byte {key[0]}, {key[1]} threads: ")


def test_grad_norm_identical_across_thread_counts() -> None:
    """The norm itself (what max_grad_norm divides by) has the same bits at every count."""
    shapes = [(100003,), (7,), (4096 * 3 + 1,)]
    grads = make_grad_stream(shapes, np.float64, 1, 9)[0]
    norms = set()
    for n in THREAD_COUNTS:
        with using_threads(n, 0):
            opt = fusedopt.SGD(make_params(shapes, np.float64, 8), lr=0.0, max_grad_norm=1.0)
            opt.step(grads)
            norms.add(opt.last_grad_norm.hex())
    assert len(norms) == 1, norms


def test_thread_settings_are_restored() -> None:
    before = (fusedopt.get_num_threads(), _core.get_min_parallel_elements())
    with using_threads(3, 0):
        assert fusedopt.get_num_threads() == 3
        assert _core.get_min_parallel_elements() == 0
    assert (fusedopt.get_num_threads(), _core.get_min_parallel_elements()) == before


def test_set_num_threads_rejects_bad_values() -> None:
    for bad, exc in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)):
        with pytest.raises(exc, match="n must be an int >= 1"):
            fusedopt.set_num_threads(bad)  # type: ignore[arg-type]


def test_set_num_threads_takes_a_numpy_integer() -> None:
    before = fusedopt.get_num_threads()
    try:
        fusedopt.set_num_threads(np.int64(1))
        assert fusedopt.get_num_threads() == 1
    finally:
        fusedopt.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# The GIL
# ---------------------------------------------------------------------------------------------

BIG = 20_000_000


def test_gil_released_during_big_step() -> None:
    """A Python thread keeps counting while a 20M-element step runs.

    The switch interval is raised to 100 s for the test, so the interpreter never takes the
    GIL away from the main thread on its own: the counter thread can only run while the main
    thread releases the GIL itself, i.e. inside the native step (the counter gives the GIL
    back on every iteration through time.sleep(0), so the main thread is never starved). The
    assertion is only that the counter advanced during some step, not how much: no timing."""
    p = np.zeros(BIG, dtype=np.float32)
    g = np.ones(BIG, dtype=np.float32)
    opt = fusedopt.SGD([p], lr=1e-3)
    opt.step([g])  # the first step takes the general path; later ones the steady one
    counter = [0]
    stop = threading.Event()
    started = threading.Event()

    def count() -> None:
        started.set()
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)  # releases the GIL (and takes it back)

    old_interval = sys.getswitchinterval()
    worker = threading.Thread(target=count, daemon=True)
    advanced = []
    try:
        worker.start()
        assert started.wait(10)
        sys.setswitchinterval(100.0)
        time.sleep(0.01)  # let the counter re-request the GIL under the new interval
        with using_threads(1):  # leave the other core to the counter
            for _ in range(5):
                before = counter[0]
                opt.step([g])
                advanced.append(counter[0] - before)
                if advanced[-1] > 0:
                    break
    finally:
        sys.setswitchinterval(old_interval)
        stop.set()
        worker.join(10)
    assert not worker.is_alive()
    assert max(advanced) > 0, f"the counter did not move during any of {len(advanced)} big steps"
    assert p[0] < 0 and p[-1] == p[0]  # the steps did run, over the whole array


def test_gil_check_is_not_vacuous() -> None:
    """Control for the test above: with the same switch interval, pure Python work that
    holds the GIL for a while lets the counter thread run not at all."""
    counter = [0]
    stop = threading.Event()
    started = threading.Event()

    def count() -> None:
        started.set()
        while not stop.is_set():
            counter[0] += 1
            time.sleep(0)

    old_interval = sys.getswitchinterval()
    worker = threading.Thread(target=count, daemon=True)
    try:
        worker.start()
        assert started.wait(10)
        sys.setswitchinterval(100.0)
        time.sleep(0.01)
        before = counter[0]
        x = 0
        for i in range(300_000):  # ~10+ ms of bytecode, GIL held throughout
            x += i
        moved = counter[0] - before
    finally:
        sys.setswitchinterval(old_interval)
        stop.set()
        worker.join(10)
    assert x > 0
    assert moved == 0
