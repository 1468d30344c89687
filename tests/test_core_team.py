"""The helper threads of a step (cpp/src/helper_pool.cpp) and each optimizer's choice between
them and one thread (cpp/src/team_choice.cpp): every thread count gives the same bits, concurrent
steps and forked children work, threadpoolctl limits fusedopt, and the choice follows what the
steps measure (simulated runs, so the test does not depend on this machine's load)."""

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


def _share_and_cost(costs: list[tuple[int, int]]) -> tuple[float, float]:
    """(share of steps on the team, time / time of the better fixed mode) of a simulated run."""
    used = _core._simulate_team_choice(costs)
    spent = sum(team if u else single for (single, team), u in zip(costs, used))
    fixed = min(sum(c[0] for c in costs), sum(c[1] for c in costs))
    return sum(used) / len(used), spent / fixed


def test_team_choice_keeps_a_faster_team() -> None:
    share, cost = _share_and_cost([(300_000, 150_000)] * 20_000)  # 1M Adam on a quiet machine
    assert share > 0.95 and cost < 1.05


def test_team_choice_is_not_misled_by_the_first_team_steps() -> None:
    """The first 20 ms of team steps pay for starting the helpers (here 500 us a step instead of
    150): they must not hand the next 400 ms to one thread (300 us)."""
    costs = [(300_000, 500_000)] * 40 + [(300_000, 150_000)] * 4_000
    used = _core._simulate_team_choice(costs)
    assert sum(used[:2_000]) > 1_800, "one thread chosen from the helpers' start-up"


def test_team_choice_is_not_misled_by_a_disturbed_first_figure() -> None:
    """Another process on a core while the team is first timed (70 us a step instead of 30; one
    thread 58, NAdam at 256K): once the load is gone, the win of one thread is checked against a
    fresh figure of the team, not kept for the next 400 ms."""
    quiet, disturbed = (58_000, 30_000), (58_000, 70_000)
    used = _core._simulate_team_choice([disturbed] * 600 + [quiet] * 10_000)
    assert sum(used[1_500:8_000]) > 0.95 * 6_500, "one thread kept after a disturbed first figure"


def test_team_choice_leaves_a_team_that_stalls() -> None:
    """A helper that a busy neighbour keeps off the CPU: each team step waits a 10 ms slice."""
    share, cost = _share_and_cost([(300_000, 10_000_000)] * 20_000)
    assert share < 0.002 and cost < 1.05


def test_team_choice_counts_rare_stalls_in_the_mean() -> None:
    """Team steps of 10 us with a 5 ms stall one time in 300 average 27 us: one thread (15 us)
    is better, although nearly every single team step is faster."""
    rng = np.random.default_rng(0)
    costs = [(15_000, 5_000_000 if x < 1 / 300 else 10_000) for x in rng.random(400_000)]
    share, cost = _share_and_cost(costs)
    assert share < 0.05 and cost < 1.05


def test_team_choice_follows_the_load() -> None:
    quiet, busy = (300_000, 150_000), (300_000, 10_000_000)
    used = _core._simulate_team_choice([quiet] * 10_000 + [busy] * 10_000 + [quiet] * 20_000)
    assert sum(used[10_000:20_000]) < 40, "kept the team after the load came"
    assert sum(used[30_000:]) > 9_500, "did not return to the team after the load left"


def test_team_choice_is_off_while_pinned() -> None:
    with using_threads(2, 0):
        assert _core._simulate_team_choice([(1_000, 1_000_000)] * 100) == [True] * 100


def test_show_runtime_names_numpys_blas_and_its_spinning_threads(capsys, monkeypatch) -> None:
    """show_runtime ends with NumPy's BLAS; for OpenBLAS it says whether its idle threads spin
    (OPENBLAS_THREAD_TIMEOUT unset) or names the timeout (docs/performance.md)."""
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    fusedopt.show_runtime()
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("numpy_blas") and blas["name"] in line
    if "openblas" not in blas["name"]:
        pytest.skip(f"NumPy's BLAS is {blas['name']}")
    assert "spin" in line and "OPENBLAS_THREAD_TIMEOUT=4" in line
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    fusedopt.show_runtime()
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.endswith("(OPENBLAS_THREAD_TIMEOUT=4)") and "spin" not in line
