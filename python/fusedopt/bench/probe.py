"""The memory-traffic probe of an optimizer step (``fusedopt._core.Probe``): the bytes the step
reads and writes, with trivial arithmetic, over the step's own arrays.

Why its own arrays: two allocations of the same size can sit on memory of different speed (on a
virtual machine, host pages of another size). On an AMD Zen 3 virtual machine, 32M float32
parameters with Adam's pattern: the probe over separate arrays took 38-40 ms, over Adam's own
arrays 29 ms (Adam itself 29-30 ms). And it reads a gradient-sized buffer of zeros written into
real pages (``np.zeros`` alone maps the shared zero page, which reads from cache: 25 ms), so that
``a += 0`` leaves float parameters and state unchanged; integer-coded state (bfloat16, int8 codes)
is incremented by one, which moves its values a little but not the step's speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fusedopt import _core


def step_probe(opt: Any, params: list[np.ndarray], state_arrays: int, what: str) -> Any:
    """The probe of ``opt``'s step on ``params`` (call after a first step: the state exists): each
    parameter and its ``state_arrays`` parameter-shaped state arrays read and written, a buffer of
    zeros read as the gradient. ``what`` names the case in the error when the state differs.

    The arrays come from a snapshot that shares them: reading ``opt.state`` would switch the
    optimizer to re-checking every state dict each step (the mode for state handed out to the
    user), and the bench would time that instead.
    """
    states = opt._engine.snapshot(copy_arrays=False)[0]
    written: list[list[np.ndarray]] = [list(params)] + [[] for _ in range(state_arrays)]
    for i, p in enumerate(params):
        arrays = [v for v in states.get(i, {}).values() if isinstance(v, np.ndarray) and v.shape == p.shape]
        if len(arrays) != state_arrays:
            raise RuntimeError(f"{what}: expected {state_arrays} state arrays, found {len(arrays)}")
        for k, a in enumerate(arrays):
            written[k + 1].append(a)
    zeros = [np.full(p.shape, 0, dtype=p.dtype) for p in params]  # real pages, not the zero page
    return _core.Probe(written, zeros)
