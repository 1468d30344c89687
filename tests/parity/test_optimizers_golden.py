"""fusedopt against torch 2.13 trajectories stored in tests/data (no torch needed).

Every case of cases.OPT_CASES (each optimizer x each of torch's own test
configurations x float32/float64) runs on every SIMD target this CPU supports
and on the NumPy backend; parameters and every state entry are compared with
torch's after construction and after each of the 20 steps.
"""

from __future__ import annotations

import functools
import json

import fusedopt
import numpy as np
import pytest

from . import cases
from .conftest import compare_trajectory


@functools.cache
def _golden_file(optimizer: str):
    path = cases.golden_path(optimizer)
    if not path.exists():
        pytest.fail(f"{path} is missing: run `python tools/make_parity_golden.py`")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@functools.cache
def _golden_case(case: cases.OptCase):
    data = _golden_file(case.optimizer)
    meta = json.loads(str(data["__meta__"]))
    assert meta["format"] == cases.GOLDEN_FORMAT, "golden data format changed: run tools/make_parity_golden.py"
    if f"{case.id}.config" not in data:
        pytest.fail(f"no golden data for {case.id}: run `python tools/make_parity_golden.py`")
    config, init, grads, snaps = cases.unpack_case(data, case)
    assert config == json.loads(case.config_json()), (
        f"golden data for {case.id} was made from another config: run tools/make_parity_golden.py"
    )
    return init, grads, snaps


def _case_params():
    return [pytest.param(c, id=c.id) for c in cases.OPT_CASES]


def test_golden_files_cover_exactly_the_matrix():
    for optimizer in cases.OPTIMIZERS:
        data = _golden_file(optimizer)
        stored = {k.rsplit(".", 1)[0] for k in data if k.endswith(".config")}
        wanted = {c.id for c in cases.cases_for(optimizer)}
        assert stored == wanted, (
            f"{cases.golden_path(optimizer).name} is stale (extra {sorted(stored - wanted)}, "
            f"missing {sorted(wanted - stored)}): run tools/make_parity_golden.py"
        )


@pytest.mark.parametrize("case", _case_params())
def test_golden_stream_matches_cases(case):
    """The stored gradient stream is the one cases.py generates (same seed, same None schedule)."""
    init, grads, _ = _golden_case(case)
    init2, grads2 = case.stream()
    for a, b in zip(init, init2):
        np.testing.assert_array_equal(a, b)
    for t, (row, row2) in enumerate(zip(grads, grads2)):
        for i, (g, g2) in enumerate(zip(row, row2)):
            assert (g is None) == (g2 is None), (t, i)
            if g is not None:
                np.testing.assert_array_equal(g, g2)


@pytest.mark.parametrize("case", _case_params())
def test_optimizer_matches_torch_golden(case, impl):
    init, grads, ref = _golden_case(case)
    got = cases.run_fusedopt_case(fusedopt, case, init, grads, impl.backend)
    compare_trajectory(got, ref, case.dtype, f"{case.id} [{impl.id}]", suite="golden")
