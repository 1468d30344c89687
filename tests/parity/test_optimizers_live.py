"""fusedopt against torch 2.13 run live on the same cases as the golden tests.

Also checks that the stored golden trajectories are what the installed torch
computes (to the suite's tolerance: torch's own sqrt may round differently on
another CPU, so the check is not bitwise).
"""

from __future__ import annotations

import functools

import pytest

torch = pytest.importorskip("torch")

import fusedopt

from . import cases
from .conftest import compare_trajectory
from .test_optimizers_golden import _golden_case

pytestmark = pytest.mark.torch


@functools.cache
def _torch_run(case: cases.OptCase):
    init, grads = case.stream()
    return init, grads, cases.run_torch_case(case, init, grads)


def _case_params():
    return [pytest.param(c, id=c.id) for c in cases.OPT_CASES]


def test_torch_version():
    assert torch.__version__.split("+")[0] == "2.13.0", "the parity suite targets torch 2.13.0"


@pytest.mark.parametrize("case", _case_params())
def test_optimizer_matches_torch_live(case, impl):
    init, grads, ref = _torch_run(case)
    got = cases.run_fusedopt_case(fusedopt, case, init, grads, impl.backend)
    compare_trajectory(got, ref, case.dtype, f"{case.id} [{impl.id}]", suite="live")


@pytest.mark.parametrize("case", _case_params())
def test_golden_data_is_what_torch_computes(case):
    _, _, golden = _golden_case(case)
    _, _, live = _torch_run(case)
    # the golden snapshots stand in for fusedopt's: same comparison, same tolerance
    compare_trajectory(golden, live, case.dtype, f"{case.id} [golden vs torch]", suite="golden-vs-torch")
