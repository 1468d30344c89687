"""The rule contract's per-array reductions and slot shapes (rule.hpp, docs/reductions.md), beyond
what the generic tables (test_core_parity, test_core_threads, test_core_state, test_bad_inputs)
already check for every optimizer that uses them."""

from __future__ import annotations

import fusedopt
import numpy as np
import pytest
from conftest import OPTIMIZERS, make_grad_stream, make_params, snapshot, assert_snapshot_equal, using_threads
from fusedopt import _core

REDUCING = [n for n in OPTIMIZERS if _core.rule_info(OPTIMIZERS[n].rule)["reduce_passes"]]


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
