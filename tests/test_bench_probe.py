"""The bench's memory probe walks the step's own arrays (bench/probe.py): separate arrays of the
same size can sit on memory of another speed, which made the probe slower than Adam."""

from __future__ import annotations

import numpy as np
import pytest

import fusedopt
from fusedopt.bench.probe import step_probe


def test_the_probe_leaves_float_parameters_and_state_as_they_were() -> None:
    rng = np.random.default_rng(0)
    p = rng.standard_normal(1000, dtype=np.float32)
    opt = fusedopt.Adam([p], lr=1e-3)
    opt.step([rng.standard_normal(1000, dtype=np.float32)])
    before, p_before = opt.state_dict(), p.copy()
    step_probe(opt, [p], 2, "Adam")()
    after = opt.state_dict()
    np.testing.assert_array_equal(p, p_before)
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_array_equal(after["state"][0][key], before["state"][0][key])
    assert before["state"][0]["exp_avg"] is not after["state"][0]["exp_avg"]  # (copies: a real check)


def test_the_probe_writes_the_optimizers_own_int8_codes() -> None:
    p = np.ones(1000, np.float32)
    opt = fusedopt.Adam([p], lr=1e-3, state_dtype="int8")
    opt.step([np.full(1000, 0.5, np.float32)])
    codes = {k: v.copy() for k, v in opt.state[0].items() if isinstance(v, np.ndarray) and v.shape == p.shape}
    p_before = p.copy()
    assert sorted(codes) == ["exp_avg", "exp_avg_sq"]
    step_probe(opt, [p], 2, "Adam int8")()
    for key, was in codes.items():  # the probe's integer state: each code incremented by one
        np.testing.assert_array_equal(opt.state[0][key], (was + 1).astype(np.uint8))
    np.testing.assert_array_equal(p, p_before)  # (+= 0)


def test_a_state_count_other_than_the_optimizers_is_refused() -> None:
    p = np.ones(10, np.float32)
    opt = fusedopt.SGD([p], lr=0.1, momentum=0.9)
    opt.step([np.ones(10, np.float32)])
    with pytest.raises(RuntimeError, match="SGD: expected 2 state arrays, found 1"):
        step_probe(opt, [p], 2, "SGD")
