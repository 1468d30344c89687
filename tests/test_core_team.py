"""The helper threads of a step (cpp/src/helper_pool.cpp) and the back-off for busy machines
(cpp/src/team.cpp): every thread count gives the same bits, concurrent steps and forked children
work, threadpoolctl limits fusedopt, and a region that cost more than it saved sends steps to one
thread for a while."""

from __future__ import annotations

import os
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
    copies,
    make_grad_stream,
    make_params,
    snapshot,
    using_threads,
)
from fusedopt import _core

BIG = [(100003,), (7,), (70001,)]


def _regions() -> int:
    return int(fusedopt.runtime_info()["parallel_regions"])


def _stepped(name: str, threads: int, steps: int = 3, **options: Any) -> dict:
    params = make_params(BIG, np.float32, 1)
    with using_threads(threads, 0):
        opt = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name], **options)
        for g in make_grad_stream(BIG, np.float32, steps, 2):
            opt.step(g)
    return snapshot(opt)


def test_parallel_steps_use_the_helpers() -> None:
    """With the team pinned, a big step is one parallel region per pass (the norm, the update)."""
    before = _regions()
    _stepped("Adam", 2, steps=2, max_grad_norm=1.0)
    assert _regions() - before == 4


def test_more_threads_than_pieces_or_cores_is_fine() -> None:
    """8 threads on 2 cores and pieces smaller than the team: same bits as 1 thread."""
    one = _stepped("SGD", 1)
    for n in (8, 33):
        assert_snapshot_equal(_stepped("SGD", n), one, f"at {n} threads: ")


def test_concurrent_steps_of_two_optimizers_from_two_threads() -> None:
    """Two Python threads stepping their own optimizers at once: one takes the helpers, the
    other runs alone; both equal a sequential run."""
    expected = _stepped("Adam", 1, steps=6)
    params = make_params(BIG, np.float32, 1)
    grads = make_grad_stream(BIG, np.float32, 6, 2)
    results: list[dict] = []
    errors: list[BaseException] = []

    def run(opt: Any) -> None:
        try:
            for g in grads:
                opt.step(g)
            results.append(snapshot(opt))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with using_threads(2, 0):
        opts = [fusedopt.Adam(copies(params), **RICH_CONFIGS["Adam"]) for _ in range(2)]
        threads = [threading.Thread(target=run, args=(o,)) for o in opts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(results) == 2
    for got in results:
        assert_snapshot_equal(got, expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_steps_in_parallel() -> None:
    """A child forked after the helpers started has none of them; its steps still run (the
    calling thread never waits for helpers that do not start) and give the parent's bits."""
    expected = _stepped("SGD", 2)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, just the step and the answer
        code = 1
        try:  # whatever happens, the child answers and leaves through os._exit
            got = _stepped("SGD", 2)
            code = 2
            assert_snapshot_equal(got, expected)
            code = 0
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    answer = b""
    while not answer and time.monotonic() < deadline:
        answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"\x00", f"child answered {answer!r} (1: raised, 2: different bits)"


def test_threadpoolctl_limits_fusedopt() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    assert any(lib["user_api"] == "openmp" for lib in threadpoolctl.threadpool_info())
    with using_threads(2, 0):
        with threadpoolctl.threadpool_limits(1):
            assert fusedopt.get_num_threads() == 1
            before = _regions()
            opt = fusedopt.SGD(make_params(BIG, np.float32, 1), lr=0.1, momentum=0.9)
            opt.step(make_grad_stream(BIG, np.float32, 1, 2)[0])
            assert _regions() == before, "a step under threadpool_limits(1) ran a parallel region"
        assert fusedopt.get_num_threads() == 2


def test_set_num_threads_lifts_the_openmp_limit_of_this_thread() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = fusedopt.get_num_threads()
    try:
        with threadpoolctl.threadpool_limits(1):
            fusedopt.set_num_threads(3)
            assert fusedopt.get_num_threads() == 3
    finally:
        fusedopt.set_num_threads(before)
    assert fusedopt.get_num_threads() == before


def test_a_costly_region_backs_off_to_one_thread_then_probes_again() -> None:
    params = make_params(BIG, np.float32, 1)
    grads = make_grad_stream(BIG, np.float32, 1, 2)[0]
    opt = fusedopt.SGD(params, lr=0.1, momentum=0.9)
    with using_threads(2, 0):
        _core._pin_threads(False)  # learn, starting afresh
        # The calling thread ran 10 of 10 pieces in 1 ms, then waited 5 ms: pure loss.
        _core._report_region(1_000_000, 5_000_000, 10, 10)
        info = fusedopt.runtime_info()
        assert info["threads_backed_off"]
        before = _regions()
        opt.step(grads)
        assert _regions() == before, "a step during the back-off ran a parallel region"
        time.sleep(0.01)  # the first back-off lasts 1 ms
        assert not fusedopt.runtime_info()["threads_backed_off"]
        opt.step(grads)
        assert _regions() > before


def test_regions_that_save_time_keep_the_helpers() -> None:
    with using_threads(2, 0):
        _core._pin_threads(False)
        for _ in range(100):
            # Half the pieces in 1 ms, the other half by a helper meanwhile, no wait: a gain.
            _core._report_region(1_000_000, 1_000, 5, 10)
        assert not fusedopt.runtime_info()["threads_backed_off"]
        # A late region the savings cover does not back off either.
        _core._report_region(1_000_000, 20_000_000, 5, 10)
        assert not fusedopt.runtime_info()["threads_backed_off"]
