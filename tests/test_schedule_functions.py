"""Schedules as pure functions of the step (fusedopt.schedules.<function>).

Closed-form values, agreement with the scheduler classes' torch golden
sequences (so each course-material recipe is the same curve in both shapes),
properties, and the exact-resume property with fusedopt's optimizers.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import fusedopt.schedules as fs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ATOL = 1e-12
GOLDEN_FILE = Path(__file__).parent / "data" / "scheduler_golden.json"
GOLDEN = {c["name"]: c for c in json.loads(GOLDEN_FILE.read_text())["cases"]}


def values(schedule: Any, n: int, start: int = 0) -> list[float]:
    return [schedule(t) for t in range(start, n)]


def golden_lr(name: str, group: int = 0) -> list[float]:
    return [row[group] for row in GOLDEN[name]["expect"]["lr"]]


def close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(a - b) <= ATOL for a, b in zip(got, want, strict=True))


# --------------------------------------------------------------------------
# Closed forms.
# --------------------------------------------------------------------------
def test_constant() -> None:
    s = fs.constant(0.3)
    assert values(s, 5) == [0.3] * 5 and s(10**9) == 0.3


def test_linear_and_polynomial() -> None:
    s = fs.linear(0.0, 1.0, 4, transition_begin=2)
    assert values(s, 9) == [0.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    p = fs.polynomial(2.0, 0.5, 2.0, 10)
    for t in range(15):
        frac = 1 - min(t, 10) / 10
        assert p(t) == pytest.approx(1.5 * frac * frac + 0.5, abs=ATOL)


def test_cosine_decay_holds_after_decay_steps() -> None:
    s = fs.cosine_decay(0.1, 20, alpha=0.1)
    for t in range(40):
        c = 0.5 * (1 + math.cos(math.pi * min(t, 20) / 20))
        assert s(t) == pytest.approx(0.1 * ((1 - 0.1) * c + 0.1), abs=ATOL)  # optax's expression
    assert s(20) == s(1000) == pytest.approx(0.01, abs=ATOL)
    e = fs.cosine_decay(1.0, 10, exponent=2.0)
    assert e(5) == pytest.approx(0.25, abs=ATOL)


def test_warmup_cosine_decay() -> None:
    s = fs.warmup_cosine_decay(0.0, 1.0, warmup_steps=10, decay_steps=110, end_value=0.1)
    assert s(0) == 0.0 and s(5) == 0.5 and s(10) == 1.0
    assert s(60) == pytest.approx(0.1 + 0.9 * 0.5, abs=ATOL)
    assert s(110) == s(500) == pytest.approx(0.1, abs=ATOL)
    z = fs.warmup_cosine_decay(0.2, 1.0, warmup_steps=0, decay_steps=4)
    assert z(0) == 1.0 and z(2) == pytest.approx(0.5, abs=ATOL) and z(4) == pytest.approx(0.0, abs=ATOL)


def test_exponential_decay() -> None:
    s = fs.exponential_decay(1.0, 10, 0.5)
    for t in range(40):
        assert s(t) == pytest.approx(0.5 ** (t / 10), abs=ATOL)
    st_ = fs.exponential_decay(1.0, 10, 0.5, transition_begin=5, staircase=True, end_value=0.2)
    assert values(st_, 40, 0) == [1.0] * 15 + [0.5] * 10 + [0.25] * 10 + [0.2] * 5
    up = fs.exponential_decay(1.0, 1, 2.0, end_value=5.0)
    assert values(up, 5) == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_piecewise_constant() -> None:
    s = fs.piecewise_constant(1.0, {10: 0.5, 5: 0.1, 20: 2.0})
    assert s(0) == s(4) == 1.0
    assert s(5) == s(9) == 0.1
    assert s(10) == s(19) == pytest.approx(0.05, abs=ATOL)
    assert s(20) == s(10**6) == pytest.approx(0.1, abs=ATOL)
    assert fs.piecewise_constant(0.3)(7) == 0.3


def test_join_restarts_each_schedule_at_zero() -> None:
    s = fs.join([fs.linear(0.0, 1.0, 10), fs.exponential_decay(1.0, 1, 0.5), 0.01], [10, 13])
    assert values(s, 16) == pytest.approx(
        [t / 10 for t in range(10)] + [1.0, 0.5, 0.25] + [0.01] * 3, abs=ATOL
    )


def test_sgdr_periods() -> None:
    s = fs.sgdr(1.0, t_0=3, t_mult=2)
    got = values(s, 10)
    assert got == pytest.approx([1, 0.75, 0.25, 1, 0.933, 0.75, 0.5, 0.25, 0.067, 1], abs=1e-3)
    assert s(3 + 6 + 12) == 1.0  # start of the 4th period


def test_one_cycle_shapes() -> None:
    lr = fs.one_cycle(10, 1.0)
    want = [0.04, 0.52, 1.0, 0.9505, 0.8117, 0.6113, 0.3887, 0.1883, 0.0495, 4e-6]
    assert values(lr, 10) == pytest.approx(want, abs=1e-4)
    assert lr(10) == lr(10**6) == lr(9)  # holds the final value: no bounce, no error
    m = fs.one_cycle_momentum(10)
    assert m(0) == pytest.approx(0.95, abs=ATOL) and m(2) == pytest.approx(0.85, abs=ATOL)
    assert m(9) == pytest.approx(0.95, abs=ATOL)
    lin = fs.one_cycle(100, 1.0, pct_start=0.5, anneal_strategy="linear", three_phase=True)
    assert lin(49) == pytest.approx(1.0, abs=ATOL) and lin(98) == pytest.approx(0.04, abs=ATOL)


# --------------------------------------------------------------------------
# The same curves as the scheduler classes (torch 2.13 golden data).
# --------------------------------------------------------------------------
def test_matches_torch_polynomial_and_cosine() -> None:
    assert close(values(fs.polynomial(0.3, 0.0, 2.0, 100), 121), golden_lr("PolynomialLR-100-2", 1))
    assert close(values(fs.cosine_decay(0.1, 30), 31), golden_lr("CosineAnnealingLR-periodic")[:31])
    assert close(values(fs.cosine_decay(1.0, 100, alpha=0.001), 101), golden_lr("CosineAnnealingLR-etamin")[:101])


def test_matches_torch_exponential_step_and_multistep() -> None:
    assert close(values(fs.exponential_decay(0.025, 1, 0.95), 121), golden_lr("ExponentialLR-095", 1))
    assert close(values(fs.exponential_decay(0.3, 7, 0.5, staircase=True), 121), golden_lr("StepLR-7-half", 1))
    assert close(values(fs.piecewise_constant(0.1, {30: 0.1, 80: 0.1}), 121), golden_lr("MultiStepLR-30-80"))
    three = fs.piecewise_constant(0.1, {10: 0.3, 40: 0.3, 90: 0.3})
    assert close(values(three, 121), golden_lr("MultiStepLR-unsorted"))


def test_matches_torch_linear_and_join() -> None:
    assert close(values(fs.linear(0.25, 1.0, 40), 121), golden_lr("LinearLR-warmup"))
    assert close(values(fs.linear(0.1, 0.01, 100), 121), golden_lr("LinearLR-decay"))
    warm_exp = fs.join([fs.linear(0.01, 0.1, 10), fs.exponential_decay(0.1, 1, 0.97)], [10])
    assert close(values(warm_exp, 121), golden_lr("SequentialLR-warmup-exp"))


def test_matches_torch_sgdr() -> None:
    assert close(values(fs.sgdr(0.3, 3, 2, end_value=0.001), 121), golden_lr("CAWR-3x2", 1))
    assert close(values(fs.sgdr(0.1, 10), 121), golden_lr("CAWR-10"))
    assert close(values(fs.sgdr(1.0, 7, end_value=0.01), 121), golden_lr("CAWR-7-etamin"))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("OneCycleLR-cos", {"total_steps": 110}),
        ("OneCycleLR-linear-3phase-betas", {"total_steps": 120, "anneal_strategy": "linear", "three_phase": True}),
        ("OneCycleLR-3phase-cos-momenta", {"total_steps": 101, "three_phase": True}),
        ("OneCycleLR-pct0", {"total_steps": 100, "pct_start": 0.0}),
        ("OneCycleLR-pct1", {"total_steps": 100, "pct_start": 1.0}),
    ],
)
def test_matches_torch_one_cycle(name: str, kwargs: dict[str, Any]) -> None:
    case = GOLDEN[name]
    k = case["kwargs"]
    t = kwargs["total_steps"]
    for gi in range(len(case["optimizer"]["groups"])):
        peak = k["max_lr"][gi] if isinstance(k["max_lr"], list) else k["max_lr"]
        lrs = golden_lr(name, gi)[:t]
        assert close(values(fs.one_cycle(peak_value=peak, **kwargs), t), lrs)

        def pick(v: Any, gi: int = gi) -> float:
            return v[gi] if isinstance(v, list) else v

        m = fs.one_cycle_momentum(
            base_momentum=pick(k.get("base_momentum", 0.85)), max_momentum=pick(k.get("max_momentum", 0.95)), **kwargs
        )
        assert close(values(m, t), [row[gi] for row in case["expect"]["mom"]][:t])


# --------------------------------------------------------------------------
# The course-material recipes, one line in each shape (as in docs/schedules.md).
# --------------------------------------------------------------------------
class StandIn:
    def __init__(self, lr: float, betas: bool = False) -> None:
        self.defaults: dict[str, Any] = {"lr": lr, "betas": (0.9, 0.999)} if betas else {"lr": lr, "momentum": 0.9}
        self.param_groups = [{"params": [], **self.defaults}]


def class_curve(make: Any, n: int, lr: float = 0.1, key: str = "lr") -> list[float]:
    o = StandIn(lr, betas=(key == "beta1"))
    s = make(o)

    def read() -> float:
        g = o.param_groups[0]
        return g["betas"][0] if key == "beta1" else g[key]

    out = [read()]
    for _ in range(n - 1):
        s.step()
        out.append(read())
    return out


RECIPES = {
    "per-update decay": (
        fs.exponential_decay(0.1, 1, 0.99),
        lambda o: fs.MultiplicativeLR(o, lambda e: 0.99),
    ),
    "step decay": (
        fs.exponential_decay(0.1, 30, 0.1, staircase=True),
        lambda o: fs.StepLR(o, step_size=30, gamma=0.1),
    ),
    "exponential decay": (
        fs.exponential_decay(0.1, 1, 0.95),
        lambda o: fs.ExponentialLR(o, gamma=0.95),
    ),
    "cosine annealing": (
        fs.cosine_decay(0.1, 100),
        lambda o: fs.CosineAnnealingLR(o, T_max=100),
    ),
    "linear warmup": (
        fs.linear(0.01, 0.1, 10),
        lambda o: fs.LinearLR(o, start_factor=0.1, total_iters=10),
    ),
    "warmup + cosine": (
        fs.warmup_cosine_decay(0.01, 0.1, 10, 100),
        lambda o: fs.SequentialLR(o, [fs.LinearLR(o, 0.1, total_iters=10), fs.CosineAnnealingLR(o, 90)], [10]),
    ),
    "one-cycle": (
        fs.one_cycle(100, 0.1),
        lambda o: fs.OneCycleLR(o, max_lr=0.1, total_steps=100),
    ),
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_is_the_same_curve_in_both_shapes(name: str) -> None:
    fn, make = RECIPES[name]
    n = 100 if name == "one-cycle" else 101  # OneCycleLR's curve ends at total_steps - 1
    assert close(values(fn, n), class_curve(make, n))


def test_one_cycle_momentum_recipe_for_beta1() -> None:
    def make(o: StandIn) -> fs.OneCycleLR:
        return fs.OneCycleLR(o, max_lr=0.1, total_steps=100)

    assert close(values(fs.one_cycle_momentum(100), 100), class_curve(make, 100, key="beta1"))


# --------------------------------------------------------------------------
# Properties.
# --------------------------------------------------------------------------
ALL = [
    fs.constant(0.1),
    fs.linear(0.0, 0.1, 10),
    fs.polynomial(0.1, 0.0, 2.0, 10, 3),
    fs.cosine_decay(0.1, 10),
    fs.warmup_cosine_decay(0.0, 0.1, 3, 10),
    fs.exponential_decay(0.1, 3, 0.5, staircase=True),
    fs.piecewise_constant(0.1, {3: 0.5}),
    fs.one_cycle(10, 0.1),
    fs.one_cycle_momentum(10),
    fs.sgdr(0.1, 3, 2),
    fs.join([fs.linear(0.0, 0.1, 3), fs.cosine_decay(0.1, 7)], [3]),
]


@pytest.mark.parametrize("s", ALL, ids=lambda s: type(s).__name__)
def test_schedule_objects_are_pure_picklable_values(s: fs.Schedule) -> None:
    assert isinstance(s, fs.Schedule)
    vals = values(s, 30)
    assert all(type(v) is float for v in vals)
    assert values(s, 30) == vals  # pure: calling again gives the same values
    assert s(-5) == s(0)  # before the start = step 0
    assert s(np.int64(7)) == s(7)  # type: ignore[arg-type]
    clone = pickle.loads(pickle.dumps(s))
    assert clone == s and values(clone, 30) == vals
    assert repr(s)
    with pytest.raises(AttributeError):
        s.init_value = 1.0  # type: ignore[attr-defined]  # frozen


@settings(max_examples=60, deadline=None)
@given(
    init=st.floats(1e-6, 10.0),
    frac=st.floats(0.0, 1.0),
    steps=st.integers(1, 500),
    exponent=st.floats(0.1, 4.0),
    t=st.integers(0, 2000),
)
def test_decays_stay_between_end_and_init(init: float, frac: float, steps: int, exponent: float, t: int) -> None:
    end = init * frac
    for s in (
        fs.cosine_decay(init, steps, alpha=frac, exponent=exponent),
        fs.polynomial(init, end, exponent, steps),
        fs.warmup_cosine_decay(end, init, steps // 2, steps + 1, end_value=end, exponent=exponent),
    ):
        v = s(t)
        assert end - 1e-12 <= v <= init + 1e-12
        assert s(t + 1) <= v + 1e-12 or t < steps // 2 + 1  # non-increasing after warmup


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(2, 400),
    pct=st.floats(0.0, 1.0),
    peak=st.floats(1e-4, 10.0),
    three=st.booleans(),
    t=st.integers(-5, 500),
)
def test_one_cycle_bounded(total: int, pct: float, peak: float, three: bool, t: int) -> None:
    if float(pct * total) == 1.0:
        return
    v = fs.one_cycle(total, peak, pct_start=pct, three_phase=three)(t)
    assert 0.0 < v <= peak * (1 + 1e-12)
    m = fs.one_cycle_momentum(total, pct_start=pct, three_phase=three)(t)
    assert 0.85 - 1e-12 <= m <= 0.95 + 1e-12


@settings(max_examples=60, deadline=None)
@given(t0=st.integers(1, 20), mult=st.integers(1, 4), t=st.integers(0, 5000))
def test_sgdr_restarts_at_period_starts(t0: int, mult: int, t: int) -> None:
    s = fs.sgdr(1.0, t0, mult)
    start, period = 0, t0
    while start + period <= t:
        start, period = start + period, period * mult
    assert s(start) == 1.0
    assert s(t) == pytest.approx((1 + math.cos(math.pi * (t - start) / period)) / 2, abs=ATOL)


# --------------------------------------------------------------------------
# Exact resume through fusedopt's optimizers.
# --------------------------------------------------------------------------
def _optimizers() -> Any:
    import fusedopt

    if not hasattr(fusedopt, "Adam") or not hasattr(fusedopt, "SGD"):
        pytest.skip("fusedopt.SGD / fusedopt.Adam not available yet")
    return fusedopt


def _stream(seed: int, n: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(7), rng.standard_normal((3, 4)), np.array(rng.standard_normal())]
    grads = [[rng.standard_normal(p.shape) for p in init] for _ in range(n)]
    return init, grads


def _make(kind: str, params: list[np.ndarray], schedules: bool) -> Any:
    fo = _optimizers()
    if kind == "adam":
        lr: Any = fs.warmup_cosine_decay(0.0, 1e-2, 5, 40) if schedules else 0.5
        beta1: Any = fs.one_cycle_momentum(40, pct_start=0.25) if schedules else 0.1
        return fo.Adam(params, lr=lr, betas=(beta1, 0.999), backend="numpy")
    if kind == "sgd":
        lr = fs.sgdr(0.05, 4, 2, end_value=1e-4) if schedules else 0.5
        mom: Any = fs.join([fs.linear(0.5, 0.9, 10), 0.9], [10]) if schedules else 0.1
        return fo.SGD(params, lr=lr, momentum=mom, backend="numpy")
    # per-group schedules (the callable lives in the param group, not in defaults)
    a, b, c = params
    return fo.Adam(
        [
            {"params": [a, b], "lr": fs.exponential_decay(1e-2, 3, 0.8, staircase=True) if schedules else 0.5},
            {
                "params": [c],
                "lr": fs.one_cycle(40, 1e-2) if schedules else 0.5,
                "betas": (fs.one_cycle_momentum(40) if schedules else 0.1, 0.99),
            },
        ],
        lr=1e-3,
        backend="numpy",
    )


@pytest.mark.parametrize("kind", ["adam", "sgd", "groups"])
@pytest.mark.parametrize("k", [0, 1, 7, 23])
def test_exact_resume(kind: str, k: int) -> None:
    """Save at step k, load into a fresh optimizer, continue: bitwise equal to an uninterrupted run."""
    n = 40
    init, grads = _stream(5 + k, n)
    ref = [p.copy() for p in init]
    opt = _make(kind, ref, schedules=True)
    history = []
    for g in grads:
        opt.step(g)
        history.append([p.copy() for p in ref])

    first = [p.copy() for p in init]
    opt1 = _make(kind, first, schedules=True)
    for g in grads[:k]:
        opt1.step(g)
    saved = pickle.loads(pickle.dumps(opt1.state_dict()))  # the schedules survive serialization
    for g in grads[k : k + 3]:
        opt1.step(g)  # keep going after saving: the saved state must not move

    resumed = [p.copy() for p in (history[k - 1] if k else init)]
    opt2 = _make(kind, resumed, schedules=False)  # constants that differ from the schedules
    opt2.load_state_dict(saved)
    for i, g in enumerate(grads[k:], start=k):
        opt2.step(g)
        for got, want in zip(resumed, history[i], strict=True):
            assert np.array_equal(got, want), f"{kind}: step {i + 1} differs after resuming at {k}"
