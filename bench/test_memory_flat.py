"""No allocation per step: over 1000 native steps (after the first steps created the state),
Python-visible memory (tracemalloc, which also sees NumPy's buffers) and the RSS stay flat.

The bounds: nothing retained (tracemalloc growth < 16 KiB over 1000 steps; a leak of one
small array per step would be > 40 KiB), the transient memory of one step (the plan's lists
and tuples) well under the smallest parameter array of a real model, and RSS growth < 1 MiB
(a single leaked gradient-sized temporary would be > 1 MiB)."""

from __future__ import annotations

import numpy as np
import pytest

from fusedopt.bench.cases import CASES, Case
from fusedopt.bench.cli import native_opt
from fusedopt.bench.timing import memory_over_steps

SHAPES = [(784, 512), (512,), (512, 512), (512,), (512, 256), (256,), (256, 10), (10,)]


@pytest.mark.parametrize("case", [c for c in CASES if c.key in ("SGD", "SGD+mom", "Adagrad", "Adam+ams", "AdamW",
                                                                 "RMSprop+c+m", "RAdam", "Lion")],
                         ids=lambda c: c.key)
def test_memory_flat_over_1000_steps(case: Case) -> None:
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s, dtype=np.float32) for s in SHAPES]
    grads = [rng.standard_normal(s, dtype=np.float32) * np.float32(0.01) for s in SHAPES]
    opt = native_opt(case, params)
    res = memory_over_steps(lambda: opt.step(grads), steps=1000)
    assert res["traced_growth_bytes"] < 16 * 1024, res
    assert res["traced_peak_above_start_bytes"] < 64 * 1024, res
    assert res["rss_growth_bytes"] < 1024 * 1024, res
    assert res["rss_max_growth_bytes"] < 1024 * 1024, res
    assert all(np.all(np.isfinite(p)) for p in params)


def test_memory_check_detects_a_leak() -> None:
    """The check itself: a step that keeps a small array per call is caught."""
    kept = []
    res = memory_over_steps(lambda: kept.append(np.zeros(16, np.float32)), steps=1000)
    assert res["traced_growth_bytes"] > 16 * 1024
