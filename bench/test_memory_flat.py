"""No allocation per step: over 1000 native steps (after the first steps created the state),
Python-visible memory (tracemalloc, which also sees NumPy's buffers) and the RSS stay flat.

Bounds: the RSS grows < 1 MiB (one leaked temporary of the largest gradient would be 1.5 MiB);
tracemalloc grows < 32 KiB in all and < 4 KiB over the last quarter (a leak of one small
array per step, ~170 B, would be 43 KiB per quarter; CPython's caches filling up give a few
KiB early on that stop growing); the peak above the level at the start of each quarter stays
< 256 KiB: CPython's free lists keep the step's small Python objects (~0.2-0.4 KB a step,
released by a full collection) but a temporary of any of the model's weight matrices (0.5-1.6
MiB) would show."""

from __future__ import annotations

import fusedopt
import numpy as np
import pytest
from fusedopt.bench.cases import CASES, Case
from fusedopt.bench.cli import native_opt
from fusedopt.bench.timing import memory_over_steps

SHAPES = [(784, 512), (512,), (512, 512), (512,), (512, 256), (256,), (256, 10), (10,)]
KEYS = ("SGD", "SGD+mom", "Adagrad", "RMSprop+c+m", "Adam", "Adam+ams", "AdamW", "Adamax", "NAdam", "RAdam", "Lion")


@pytest.fixture
def one_thread():
    """One thread: the check is about memory, and a busy shared machine slows a team of 2."""
    saved = fusedopt.get_num_threads()
    fusedopt.set_num_threads(1)
    yield
    fusedopt.set_num_threads(saved)


@pytest.mark.parametrize("case", [c for c in CASES if c.key in KEYS], ids=lambda c: c.key)
def test_memory_flat_over_1000_steps(case: Case, one_thread) -> None:
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s, dtype=np.float32) for s in SHAPES]
    grads = [rng.standard_normal(s, dtype=np.float32) * np.float32(0.01) for s in SHAPES]
    opt = native_opt(case, params)
    res = memory_over_steps(lambda: opt.step(grads), steps=1000, chunks=4)
    assert res["rss_growth_bytes"] < 1024 * 1024, res
    assert res["rss_max_growth_bytes"] < 1024 * 1024, res
    assert res["traced_growth_bytes"] < 32 * 1024, res
    assert res["traced_growth_per_chunk_bytes"][-1] < 4 * 1024, res
    assert res["traced_peak_above_start_bytes"] < 256 * 1024, res
    assert opt.step_count == 1000 + 2 * 10
    assert all(np.all(np.isfinite(p)) for p in params)


def test_memory_check_detects_a_leak() -> None:
    """The check itself: a step that keeps a small array per call is caught in every quarter."""
    kept = []
    res = memory_over_steps(lambda: kept.append(np.zeros(16, np.float32)), steps=1000, chunks=4)
    assert res["traced_growth_bytes"] > 100 * 1024
    assert min(res["traced_growth_per_chunk_bytes"]) > 4 * 1024
