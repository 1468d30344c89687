"""Scheduler classes (fusedopt.schedules) against torch 2.13's lr_scheduler.

The default tests replay tests/data/scheduler_golden.json (written by
tools/make_scheduler_golden.py from torch 2.13) on a stand-in optimizer, so
they need no torch. Tests marked ``torch`` run the same cases, plus seeded
random argument sets, live against torch when it is importable.
"""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import fusedopt.schedules as fs
import pytest
from scheduler_specs import decode

GOLDEN = Path(__file__).parent / "data" / "scheduler_golden.json"
DATA = json.loads(GOLDEN.read_text())
CASES: list[dict[str, Any]] = DATA["cases"]
STEP_CASES = [c for c in CASES if "epochs" not in c]
ATOL = 1e-12

CLASSES = [
    "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "ReduceLROnPlateau", "LambdaLR", "MultiplicativeLR",
    "SequentialLR", "ChainedScheduler",
]  # fmt: skip

live = pytest.mark.torch
torch_warnings = pytest.mark.filterwarnings("ignore::UserWarning")  # torch's step-order / deprecation warnings


# --------------------------------------------------------------------------
# The optimizer protocol the schedulers drive, without fusedopt's optimizers.
# --------------------------------------------------------------------------
class StandIn:
    """``param_groups`` + ``defaults``, groups filled from the defaults as torch does."""

    def __init__(self, spec: dict[str, Any]) -> None:
        kind = spec["kind"]
        self.defaults: dict[str, Any] = {"lr": spec["lr"]}
        if kind == "sgd":
            self.defaults["momentum"] = spec["momentum"]
        elif kind == "adam":
            self.defaults["betas"] = tuple(spec["betas"])
        self.param_groups: list[dict[str, Any]] = []
        for g in spec["groups"]:
            group: dict[str, Any] = {"params": [], **g}
            for k, v in self.defaults.items():
                group.setdefault(k, v)
            self.param_groups.append(group)


def make_optimizer(groups: list[dict[str, Any]], kind: str = "sgd") -> StandIn:
    return StandIn({"kind": kind, "lr": 0.1, "momentum": 0.9, "betas": [0.9, 0.999], "groups": groups})


def build(module: Any, optimizer: Any, name: str, kwargs: dict[str, Any]) -> Any:
    """``module.<name>(optimizer, **kwargs)`` from a golden spec (module: fusedopt.schedules or torch's)."""
    kw = {k: decode(v, lambda n, k2: build(module, optimizer, n, k2)) for k, v in kwargs.items()}
    if name == "ChainedScheduler":
        return module.ChainedScheduler(kw.pop("schedulers"), optimizer=optimizer, **kw)
    return getattr(module, name)(optimizer, **kw)


def momenta(optimizer: Any) -> list[float]:
    return [float(g["betas"][0]) if "betas" in g else float(g["momentum"]) for g in optimizer.param_groups]


def call(sched: Any, case: dict[str, Any], i: int) -> None:
    """The i-th call of a case: step(metric), step() or step(epoch)."""
    if "metrics" in case:
        sched.step(case["metrics"][i])
    elif "epochs" in case:
        sched.step(case["epochs"][i])
    else:
        sched.step()


def snapshot(sched: Any, optimizer: Any, with_mom: bool) -> dict[str, Any]:
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    assert [float(x) for x in sched.get_last_lr()] == lrs
    snap: dict[str, Any] = {"lr": lrs, "epoch": getattr(sched, "last_epoch", None)}
    if with_mom:
        snap["mom"] = momenta(optimizer)
    return snap


def assert_close(got: list[float], want: list[float], what: str) -> None:
    assert len(got) == len(want), what
    for j, (a, b) in enumerate(zip(got, want, strict=True)):
        assert abs(a - b) <= ATOL, f"{what} group {j}: {a!r} != {b!r} (diff {a - b:.3g})"


def check_against(case: dict[str, Any], expect: dict[str, Any], sched: Any, optimizer: Any, start: int = 0) -> None:
    """Continue ``sched`` from call ``start`` and compare every snapshot with ``expect``."""
    with_mom = "mom" in expect
    n_calls = len(case["epochs"]) if "epochs" in case else case["steps"]
    raises = expect["raises"]
    for i in range(start, n_calls):
        if raises is not None and i == raises:
            with pytest.raises(ValueError, match="Tried to step"):
                call(sched, case, i)
            return
        call(sched, case, i)
        snap = snapshot(sched, optimizer, with_mom)
        where = f"{case['name']} call {i + 1}"
        assert_close(snap["lr"], expect["lr"][i + 1], f"{where} lr")
        if with_mom:
            assert_close(snap["mom"], expect["mom"][i + 1], f"{where} momentum")
        assert snap["epoch"] == expect["epoch"][i + 1], f"{where} last_epoch"
    assert raises is None


def run_ours(case: dict[str, Any]) -> tuple[Any, StandIn]:
    o = StandIn(case["optimizer"])
    return build(fs, o, case["cls"], case["kwargs"]), o


# --------------------------------------------------------------------------
# Golden data (no torch needed).
# --------------------------------------------------------------------------
def test_golden_covers_every_class() -> None:
    """The issue's bar: >= 3 argument sets, 100+ steps, groups with different base lrs."""
    for cls in CLASSES:
        runs = [c for c in STEP_CASES if c["cls"] == cls]
        assert len([c for c in runs if c["steps"] >= 100]) >= 3, cls
        assert any(len({g["lr"] for g in c["optimizer"]["groups"]}) > 1 for c in runs), cls
    assert GOLDEN.stat().st_size < 1_000_000
    assert DATA["torch"].startswith("2.13")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden(case: dict[str, Any]) -> None:
    sched, o = run_ours(case)
    expect = case["expect"]
    snap = snapshot(sched, o, "mom" in expect)
    assert_close(snap["lr"], expect["lr"][0], f"{case['name']} after construction")
    if "mom" in expect:
        assert_close(snap["mom"], expect["mom"][0], f"{case['name']} momentum after construction")
    assert snap["epoch"] == expect["epoch"][0]
    assert sorted(sched.state_dict()) == expect["state_keys"], "state_dict keys differ from torch's"
    check_against(case, expect, sched, o)
    if o.defaults.get("betas"):
        assert all(g["betas"][1] == 0.999 for g in o.param_groups), "beta2 must be left alone"


def _resume(case: dict[str, Any], state: dict[str, Any], groups: list[dict[str, Any]]) -> tuple[Any, StandIn]:
    """What a user does on restart: fresh optimizer + scheduler, then load both states."""
    sched, o = run_ours(case)
    for g, saved in zip(o.param_groups, groups, strict=True):
        g.clear()
        g.update(copy.deepcopy(saved), params=[])
    sched.load_state_dict(state)
    return sched, o


@pytest.mark.parametrize("case", STEP_CASES, ids=[c["name"] for c in STEP_CASES])
def test_golden_resume(case: dict[str, Any]) -> None:
    """state_dict at call k, load into fresh objects, continue: same values as uninterrupted."""
    k = case["steps"] // 3
    sched, o = run_ours(case)
    for i in range(k):
        call(sched, case, i)
    state = sched.state_dict()
    json.dumps(state)  # plain data: no references to the optimizer or the scheduler
    groups = [{key: v for key, v in g.items() if key != "params"} for g in o.param_groups]
    for i in range(k, k + 3):  # the saved state must not alias the live scheduler
        call(sched, case, i)
    sched2, o2 = _resume(case, state, groups)
    assert_close(sched2.get_last_lr(), case["expect"]["lr"][k], f"{case['name']} get_last_lr after load")
    check_against(case, case["expect"], sched2, o2, start=k)


# --------------------------------------------------------------------------
# The behaviours users trip over (reference section 8, verified sequences).
# --------------------------------------------------------------------------
def lrs_of(sched: Any, o: StandIn, n: int, group: int = 0) -> list[float]:
    out = [o.param_groups[group]["lr"]]
    for _ in range(n):
        sched.step()
        out.append(o.param_groups[group]["lr"])
    return out


def one(lr: float = 1.0, kind: str = "sgd", **extra: Any) -> StandIn:
    return make_optimizer([{"lr": lr, **extra}], kind)


def test_documented_sequences() -> None:
    o = one()
    assert lrs_of(fs.StepLR(o, 3, 0.5), o, 6) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    o = one()
    assert lrs_of(fs.MultiStepLR(o, [2, 5, 5]), o, 5) == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.001], abs=ATOL)
    o = one()
    assert lrs_of(fs.ConstantLR(o, 0.5, 3), o, 4) == [0.5, 0.5, 0.5, 1, 1]
    o = one()
    assert lrs_of(fs.LinearLR(o, 0.25, 1.0, 4), o, 5) == pytest.approx([0.25, 0.4375, 0.625, 0.8125, 1, 1], abs=ATOL)
    o = one()
    assert lrs_of(fs.PolynomialLR(o, 4, 2.0), o, 5) == pytest.approx([1, 0.5625, 0.25, 0.0625, 0, 0], abs=ATOL)
    o = one()
    cawr = lrs_of(fs.CosineAnnealingWarmRestarts(o, 3, 2), o, 9)
    assert cawr == pytest.approx([1, 0.75, 0.25, 1, 0.933, 0.75, 0.5, 0.25, 0.067, 1], abs=1e-3)


def test_cosine_annealing_is_periodic_past_t_max() -> None:
    o = one()
    got = lrs_of(fs.CosineAnnealingLR(o, T_max=4, eta_min=0.1), o, 16)
    closed = [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(17)]
    assert got == pytest.approx(closed, abs=ATOL)
    assert got[4] == pytest.approx(0.1, abs=ATOL) and got[8] == pytest.approx(1.0, abs=ATOL)


def test_one_cycle_bounces_at_total_steps_then_raises() -> None:
    o = one()
    s = fs.OneCycleLR(o, max_lr=1.0, total_steps=10)
    got = lrs_of(s, o, 9)
    want = [0.04, 0.52, 1.0, 0.9505, 0.8117, 0.6113, 0.3887, 0.1883, 0.0495, 4e-6]
    assert got == pytest.approx(want, abs=1e-4)
    s.step()  # last_epoch == total_steps is allowed: the lr bounces back up
    assert o.param_groups[0]["lr"] == pytest.approx(0.0495, abs=1e-4)
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        s.step()


def test_plateau_reduces_only_by_more_than_eps_and_has_no_initial_step() -> None:
    o = one(lr=1.0)
    s = fs.ReduceLROnPlateau(o, factor=0.5, patience=2, cooldown=1)
    assert o.param_groups[0]["lr"] == 1.0 and "initial_lr" not in o.param_groups[0] and s.last_epoch == 0
    lrs = []
    for _ in range(12):
        s.step(1.0)
        lrs.append(o.param_groups[0]["lr"])
    # reduced on the 4th call, then every 4 calls (1 cooldown + patience 2 + 1)
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125]
    o = one(lr=1.5e-8)
    s = fs.ReduceLROnPlateau(o, factor=0.5, patience=0)
    for _ in range(5):
        s.step(1.0)
    assert o.param_groups[0]["lr"] == 1.5e-8  # a 0.75e-8 reduction is below eps=1e-8: ignored


def test_sequential_restarts_next_scheduler_at_its_closed_form() -> None:
    o = one()
    s = fs.SequentialLR(o, [fs.LinearLR(o, 0.1, total_iters=3), fs.ExponentialLR(o, 0.5)], milestones=[3])
    assert lrs_of(s, o, 5) == pytest.approx([0.1, 0.4, 0.7, 1.0, 0.5, 0.25], abs=ATOL)
    o = one()
    s = fs.SequentialLR(o, [fs.ConstantLR(o, 0.1, total_iters=2), fs.CosineAnnealingLR(o, 4)], milestones=[2])
    assert lrs_of(s, o, 6) == pytest.approx([0.1, 0.1, 1.0, 0.854, 0.5, 0.146, 0.0], abs=1e-3)


def test_chained_multiplies_recursive_forms() -> None:
    o = one()
    s = fs.ChainedScheduler([fs.ConstantLR(o, 0.1, total_iters=2), fs.ExponentialLR(o, 0.9)])
    assert lrs_of(s, o, 3) == pytest.approx([0.1, 0.09, 0.81, 0.729], abs=ATOL)


def test_second_scheduler_sees_original_lr_as_initial_lr() -> None:
    o = one(lr=1.0)
    fs.ConstantLR(o, factor=0.5)
    s2 = fs.ExponentialLR(o, 0.9)
    assert o.param_groups[0]["initial_lr"] == 1.0 and s2.base_lrs == [1.0]
    assert o.param_groups[0]["lr"] == 0.5


def test_cyclic_overwrites_lr_and_momentum_and_adds_keys() -> None:
    o = make_optimizer([{"lr": 0.5, "momentum": 0.0}])
    fs.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4)
    g = o.param_groups[0]
    assert g["lr"] == 0.01 and g["momentum"] == 0.9  # momentum 0 is overwritten with max_momentum
    assert g["max_momentum"] == 0.9 and g["base_momentum"] == 0.8
    o = make_optimizer([{"lr": 0.5}], kind="adam")
    s = fs.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4)
    s.step()
    betas = o.param_groups[0]["betas"]
    assert isinstance(betas, tuple) and betas[1] == 0.999 and betas[0] == pytest.approx(0.9 - 0.1 / 4, abs=ATOL)


def test_one_cycle_sets_initial_lr_unconditionally() -> None:
    o = make_optimizer([{"lr": 0.5, "initial_lr": 123.0}])
    fs.OneCycleLR(o, max_lr=1.0, total_steps=20)
    g = o.param_groups[0]
    assert g["initial_lr"] == 1.0 / 25 and g["max_lr"] == 1.0 and g["min_lr"] == 1.0 / 25 / 1e4
    assert g["momentum"] == 0.95 and g["max_momentum"] == 0.95 and g["base_momentum"] == 0.85


def test_constant_lr_factor_zero_restores_initial_lr() -> None:
    """torch divides by zero at total_iters; fusedopt restores initial_lr (the closed form)."""
    o = one(lr=0.3)
    assert lrs_of(fs.ConstantLR(o, factor=0.0, total_iters=2), o, 3) == [0.0, 0.0, 0.3, 0.3]


def test_resume_with_last_epoch_needs_initial_lr() -> None:
    with pytest.raises(KeyError, match="initial_lr"):
        fs.StepLR(one(), step_size=3, last_epoch=5)


def test_closed_form_jump() -> None:
    o = one(lr=1.0)
    s = fs.StepLR(o, 3, 0.5)
    s.step(7)
    assert o.param_groups[0]["lr"] == 0.25 and s.last_epoch == 7
    s.step(1)
    assert o.param_groups[0]["lr"] == 1.0


# --------------------------------------------------------------------------
# The two shapes don't mix on one key.
# --------------------------------------------------------------------------
def test_callable_lr_is_refused_naming_the_group() -> None:
    o = make_optimizer([{"lr": 0.1}, {"lr": fs.cosine_decay(0.1, 100)}])
    for make in (
        lambda: fs.StepLR(o, 3),
        lambda: fs.LambdaLR(o, lambda e: 1.0),
        lambda: fs.CyclicLR(o, 0.01, 0.1),
        lambda: fs.OneCycleLR(o, 0.1, total_steps=10),
        lambda: fs.ReduceLROnPlateau(o),
        lambda: fs.CosineAnnealingWarmRestarts(o, 5),
    ):
        with pytest.raises(TypeError, match=r"param_groups\[1\]\['lr'\]"):
            make()


def test_callable_momentum_is_refused_only_when_driven() -> None:
    o = make_optimizer([{"lr": 0.1, "betas": (fs.one_cycle_momentum(100), 0.999)}], kind="adam")
    with pytest.raises(TypeError, match=r"param_groups\[0\]\['betas\[0\]'\]"):
        fs.OneCycleLR(o, 0.1, total_steps=100)
    fs.OneCycleLR(o, 0.1, total_steps=100, cycle_momentum=False)  # beta1 not driven: fine
    o = make_optimizer([{"lr": 0.1, "momentum": fs.constant(0.9)}])
    with pytest.raises(TypeError, match=r"\['momentum'\]"):
        fs.CyclicLR(o, 0.01, 0.1)
    fs.StepLR(o, 3)  # only lr is driven


# --------------------------------------------------------------------------
# Protocol details.
# --------------------------------------------------------------------------
class Decay:
    """A callable object: its __dict__ is saved by LambdaLR.state_dict (torch's rule)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def __call__(self, e: int) -> float:
        return self.rate**e


def test_state_dict_is_a_copy_and_saves_callable_objects() -> None:
    o = make_optimizer([{"lr": 1.0}, {"lr": 0.5}])
    s = fs.LambdaLR(o, [Decay(0.9), lambda e: 1.0])
    s.step()
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"rate": 0.9}, None]
    sd["base_lrs"][0] = 99.0
    assert s.base_lrs == [1.0, 0.5]
    o2 = make_optimizer([{"lr": 1.0}, {"lr": 0.5}])
    s2 = fs.LambdaLR(o2, [Decay(0.5), lambda e: 1.0])
    s2.load_state_dict(s.state_dict())
    assert s2.lr_lambdas[0].rate == 0.9 and s2.last_epoch == 1  # type: ignore[attr-defined]
    s.step()
    s2.step()
    assert o.param_groups[0]["lr"] == o2.param_groups[0]["lr"] == pytest.approx(0.81, abs=ATOL)


def test_cyclic_custom_scale_fn_state() -> None:
    class Scale:
        def __init__(self) -> None:
            self.k = 0.5

        def __call__(self, x: float) -> float:
            return self.k

    o = one()
    s = fs.CyclicLR(o, 0.0, 1.0, step_size_up=2, scale_fn=Scale(), cycle_momentum=False)
    sd = s.state_dict()
    assert sd["_scale_fn_custom"] == {"k": 0.5}
    fn = Scale()
    fn.k = 0.1
    s2 = fs.CyclicLR(one(), 0.0, 1.0, step_size_up=2, scale_fn=fn, cycle_momentum=False)
    s2.load_state_dict(sd)
    assert fn.k == 0.5 and s2.scale_fn(3) == 0.5


def test_get_last_lr_is_a_copy_and_subclassing_works() -> None:
    class Halving(fs.LRScheduler):
        def get_lr(self) -> list[float]:
            return [b * 0.5**self.last_epoch for b in self.base_lrs]

    o = one(lr=1.0)
    s = Halving(o)
    s.get_last_lr().append(3.0)
    assert s.get_last_lr() == [1.0]
    assert lrs_of(s, o, 3) == [1.0, 0.5, 0.25, 0.125]


def test_not_an_optimizer() -> None:
    with pytest.raises(TypeError, match="not an optimizer"):
        fs.StepLR(object(), 3)  # type: ignore[arg-type]


def test_public_names() -> None:
    for name in [*CLASSES, "LRScheduler"]:
        assert isinstance(getattr(fs, name), type) and name in fs.__all__
        if name != "LRScheduler":
            assert issubclass(getattr(fs, name), fs.LRScheduler)
            assert getattr(fs, name).__doc__


# --------------------------------------------------------------------------
# Live against torch (skipped without torch).
# --------------------------------------------------------------------------
def torch_run(case: dict[str, Any]) -> tuple[Any, Any]:
    torch = pytest.importorskip("torch")
    groups = [{"params": [torch.zeros(1)], **g} for g in case["optimizer"]["groups"]]
    spec = case["optimizer"]
    if spec["kind"] == "sgd":
        o = torch.optim.SGD(groups, lr=spec["lr"], momentum=spec["momentum"])
    elif spec["kind"] == "adam":
        o = torch.optim.Adam(groups, lr=spec["lr"], betas=tuple(spec["betas"]))
    else:
        o = torch.optim.Adagrad(groups, lr=spec["lr"])
    return build(torch.optim.lr_scheduler, o, case["cls"], case["kwargs"]), o


def record(sched: Any, o: Any, case: dict[str, Any], n_calls: int, with_mom: bool = True) -> dict[str, Any]:
    rec: dict[str, Any] = {"lr": [], "mom": [], "epoch": [], "raises": None}

    def snap() -> None:
        rec["lr"].append([float(g["lr"]) for g in o.param_groups])
        rec["epoch"].append(getattr(sched, "last_epoch", None))
        has_mom = with_mom and all("momentum" in g or "betas" in g for g in o.param_groups)
        rec["mom"].append(momenta(o) if has_mom else [])

    snap()
    for i in range(n_calls):
        try:
            call(sched, case, i)
        except ValueError:
            rec["raises"] = i
            break
        snap()
    return rec


def assert_same_run(a: dict[str, Any], b: dict[str, Any], name: str) -> None:
    assert a["raises"] == b["raises"], name
    assert len(a["lr"]) == len(b["lr"]), name
    for i, (x, y) in enumerate(zip(a["lr"], b["lr"], strict=True)):
        assert_close(x, y, f"{name} call {i} lr")
    for i, (x, y) in enumerate(zip(a["mom"], b["mom"], strict=True)):
        assert_close(x, y, f"{name} call {i} momentum")
    assert a["epoch"] == b["epoch"], name


@live
@torch_warnings
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_live_against_torch(case: dict[str, Any]) -> None:
    """The golden cases, recomputed by the installed torch right now."""
    n = len(case["epochs"]) if "epochs" in case else case["steps"]
    ts, to = torch_run(case)
    want = record(ts, to, case, n)
    assert sorted(ts.state_dict()) == case["expect"]["state_keys"]
    sched, o = run_ours(case)
    assert_same_run(record(sched, o, case, n), want, case["name"])


@live
@torch_warnings
@pytest.mark.parametrize("case", STEP_CASES, ids=[c["name"] for c in STEP_CASES])
def test_live_load_torch_state_dict(case: dict[str, Any]) -> None:
    """A torch scheduler's state_dict (and optimizer group values) load into ours and continue."""
    k = case["steps"] // 2
    ts, to = torch_run(case)
    for i in range(k):
        call(ts, case, i)
    groups = [{key: v for key, v in g.items() if key != "params"} for g in to.param_groups]
    sched, o = _resume(case, ts.state_dict(), groups)
    rest = dict(case)
    if "metrics" in case:
        rest["metrics"] = case["metrics"][k:]
    n = case["steps"] - k
    assert_same_run(record(sched, o, rest, n), record(ts, to, rest, n), case["name"])


def random_cases(seed: int, per_class: int = 6) -> list[dict[str, Any]]:
    """Seeded random argument sets for each class (60 steps, 2-3 groups)."""
    r = random.Random(seed)
    out = []

    def groups() -> list[dict[str, Any]]:
        return [{"lr": round(10 ** r.uniform(-4, 0), 6)} for _ in range(r.choice([2, 3]))]

    def u(a: float, b: float) -> float:
        return round(r.uniform(a, b), 4)

    def args(cls: str) -> dict[str, Any]:
        if cls == "StepLR":
            return {"step_size": r.randint(1, 20), "gamma": u(0.05, 1.2)}
        if cls == "MultiStepLR":
            return {"milestones": [r.randint(0, 70) for _ in range(r.randint(1, 5))], "gamma": u(0.05, 1.0)}
        if cls == "ConstantLR":
            return {"factor": u(0.01, 1.0), "total_iters": r.randint(0, 70)}
        if cls == "LinearLR":
            return {"start_factor": u(0.01, 1.0), "end_factor": u(0.0, 1.0), "total_iters": r.randint(1, 70)}
        if cls == "ExponentialLR":
            return {"gamma": u(0.8, 1.05)}
        if cls == "PolynomialLR":
            return {"total_iters": r.randint(1, 70), "power": u(0.1, 4.0)}
        if cls == "CosineAnnealingLR":
            return {"T_max": r.randint(1, 40), "eta_min": u(0.0, 0.01)}
        if cls == "CosineAnnealingWarmRestarts":
            return {"T_0": r.randint(1, 15), "T_mult": r.randint(1, 3), "eta_min": u(0.0, 0.001)}
        if cls == "CyclicLR":
            return {"base_lr": u(0.0001, 0.01), "max_lr": u(0.01, 1.0), "step_size_up": r.randint(1, 12),
                    "step_size_down": r.choice([None, r.randint(1, 12)]),
                    "mode": r.choice(["triangular", "triangular2", "exp_range"]), "gamma": u(0.9, 1.0)}
        if cls == "OneCycleLR":
            return {"max_lr": u(0.01, 1.0), "total_steps": r.randint(62, 90), "pct_start": u(0.05, 0.95),
                    "anneal_strategy": r.choice(["cos", "linear"]), "three_phase": r.random() < 0.5,
                    "div_factor": u(2, 50), "final_div_factor": u(10, 1e4)}
        if cls == "ReduceLROnPlateau":
            return {"mode": r.choice(["min", "max"]), "factor": u(0.05, 0.9), "patience": r.randint(0, 5),
                    "threshold": u(0.0, 0.05), "threshold_mode": r.choice(["rel", "abs"]),
                    "cooldown": r.randint(0, 3), "min_lr": u(0.0, 1e-4), "eps": r.choice([1e-8, 1e-5])}
        if cls == "LambdaLR":
            return {"lr_lambda": {"$fn": f"lambda e: {u(0.8, 1.0)} ** e + {u(0, 0.1)} * (e % {r.randint(1, 9)})"}}
        if cls == "MultiplicativeLR":
            return {"lr_lambda": {"$fn": f"lambda e: {u(0.9, 1.0)} if e % {r.randint(1, 9)} else {u(0.3, 1.0)}"}}
        subs = [{"$sched": ["LinearLR", args("LinearLR")]}, {"$sched": ["ExponentialLR", args("ExponentialLR")]},
                {"$sched": ["CosineAnnealingLR", args("CosineAnnealingLR")]}, {"$sched": ["StepLR", args("StepLR")]}]
        r.shuffle(subs)
        if cls == "ChainedScheduler":
            return {"schedulers": subs[: r.randint(1, 3)]}
        n = r.randint(2, 4)
        return {"schedulers": subs[:n], "milestones": sorted(r.randint(1, 50) for _ in range(n - 1))}

    for cls in CLASSES:
        for j in range(per_class):
            kinds = ["sgd", "adam"] if cls in ("CyclicLR", "OneCycleLR") else ["sgd", "adam", "plain"]
            kind = r.choice(kinds)
            c = {"name": f"{cls}-random{j}", "cls": cls, "kwargs": args(cls), "steps": 60,
                 "optimizer": {"kind": kind, "lr": 0.01, "momentum": 0.9, "betas": [0.9, 0.999], "groups": groups()}}
            if cls == "ReduceLROnPlateau":
                c["metrics"] = [round(1.0 / (1 + 0.1 * t) + r.uniform(-0.05, 0.05), 4) for t in range(60)]
            out.append(c)
    return out


RANDOM_CASES = random_cases(20260405)


@live
@torch_warnings
@pytest.mark.parametrize("case", RANDOM_CASES, ids=[c["name"] for c in RANDOM_CASES])
def test_live_random_arguments(case: dict[str, Any]) -> None:
    ts, to = torch_run(case)
    want = record(ts, to, case, case["steps"])
    sched, o = run_ours(case)
    assert_same_run(record(sched, o, case, case["steps"]), want, f"{case['name']} {case['kwargs']}")
