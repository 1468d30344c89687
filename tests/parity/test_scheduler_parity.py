"""Every torch lr_scheduler class, driving an optimizer: fusedopt.schedules.<Name>
on a fusedopt optimizer against torch.optim.lr_scheduler.<Name> on torch's, fed
the same gradients for 25 steps.  After construction and after every
step()+scheduler.step() the group's lr (and momentum / beta1 for the cyclic
schedulers) and every parameter must match.  Golden data always; live too when
torch is importable."""

from __future__ import annotations

import functools
import importlib.util
import json

import fusedopt
import numpy as np
import pytest

from . import cases
from .conftest import SCHEDULE_TOLERANCE, TOLERANCES, record_error

HAVE_TORCH = importlib.util.find_spec("torch") is not None

_PARAMS = [pytest.param(c, id=c.id) for c in cases.SCHED_CASES]


@functools.cache
def _golden():
    if not cases.SCHED_GOLDEN.exists():
        pytest.fail(f"{cases.SCHED_GOLDEN} is missing: run `python tools/make_parity_golden.py`")
    with np.load(cases.SCHED_GOLDEN) as data:
        return {k: data[k] for k in data.files}


def _compare(case: cases.SchedCase, got, ref, suite: str):
    hp, ps = got
    ref_hp, ref_ps = ref
    names = ["lr", *case.extra_state]
    h_rtol, h_atol = SCHEDULE_TOLERANCE
    rtol, atol = TOLERANCES[case.dtype]
    worst = 0.0
    for r in range(ref_hp.shape[0]):
        when = "after construction" if r == 0 else f"after step {r}"
        for j, name in enumerate(names):
            assert cases.close(hp[r, j], ref_hp[r, j], h_rtol, h_atol), (
                f"{case.id}: {name} {when} is {hp[r, j]!r}, torch {ref_hp[r, j]!r}"
                f"\nfusedopt {name}s: {hp[: r + 1, j].tolist()}\ntorch    {name}s: {ref_hp[: r + 1, j].tolist()}"
            )
        err = cases.rel_err(ps[r], ref_ps[r], rtol, atol)
        worst = max(worst, err)
        assert cases.close(ps[r], ref_ps[r], rtol, atol), (
            f"{case.id}: params {when} differ from torch (rel err {err:.3g}, rtol {rtol:g}, atol {atol:g})"
        )
    record_error(suite, case.dtype, worst, f"{case.id} params")


def test_golden_covers_every_scheduler_class():
    data = _golden()
    stored = {k.rsplit(".", 1)[0] for k in data if k.endswith(".config")}
    assert stored == {c.id for c in cases.SCHED_CASES}, "stale golden data: run tools/make_parity_golden.py"
    from fusedopt import schedules

    wanted = {
        "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
        "SequentialLR", "CosineAnnealingLR", "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR",
        "CosineAnnealingWarmRestarts", "OneCycleLR", "PolynomialLR",
    }  # torch.optim.lr_scheduler.__all__ in 2.13, minus the LRScheduler base class
    covered = {c.scheduler for c in cases.SCHED_CASES}
    assert covered == wanted
    missing = sorted(n for n in wanted if not hasattr(schedules, n))
    assert not missing, f"fusedopt.schedules lacks {missing}"


@pytest.mark.parametrize("case", _PARAMS)
def test_scheduler_matches_torch_golden(case):
    data = _golden()
    assert json.loads(str(data[f"{case.id}.config"])) == json.loads(case.config_json()), (
        f"golden data for {case.id} is stale: run tools/make_parity_golden.py"
    )
    init, grads = case.stream()
    np.testing.assert_array_equal(np.concatenate([a.reshape(-1) for a in init]), data[f"{case.id}.params"][0])
    got = cases.run_fusedopt_sched(fusedopt, case, init, grads)
    _compare(case, got, (data[f"{case.id}.hparams"], data[f"{case.id}.params"]), "golden")


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")
@pytest.mark.parametrize("case", _PARAMS)
def test_scheduler_matches_torch_live(case):
    init, grads = case.stream()
    ref = cases.run_torch_sched(case, init, grads)
    got = cases.run_fusedopt_sched(fusedopt, case, init, grads)
    _compare(case, got, ref, "live")
