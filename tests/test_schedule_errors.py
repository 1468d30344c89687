"""Invalid arguments raise ValueError (or TypeError for wrong kinds) naming the argument."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import fusedopt.schedules as fs
import pytest


class StandIn:
    def __init__(self, n_groups: int = 2, kind: str = "sgd") -> None:
        self.defaults: dict[str, Any] = {"lr": 0.1}
        if kind == "sgd":
            self.defaults["momentum"] = 0.9
        elif kind == "adam":
            self.defaults["betas"] = (0.9, 0.999)
        self.param_groups = [{"params": [], **self.defaults, "lr": 0.1 / (i + 1)} for i in range(n_groups)]


def opt(kind: str = "sgd") -> StandIn:
    return StandIn(kind=kind)


def sub(o: StandIn) -> fs.LRScheduler:
    return fs.ExponentialLR(o, 0.9)


# (id, factory, argument named in the message)
CLASS_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("StepLR step_size 0", lambda: fs.StepLR(opt(), step_size=0), "step_size"),
    ("StepLR step_size negative", lambda: fs.StepLR(opt(), step_size=-3), "step_size"),
    ("StepLR step_size float", lambda: fs.StepLR(opt(), step_size=2.5), "step_size"),  # type: ignore[arg-type]
    ("StepLR gamma negative", lambda: fs.StepLR(opt(), 3, gamma=-0.1), "gamma"),
    ("StepLR last_epoch", lambda: fs.StepLR(opt(), 3, last_epoch=-2), "last_epoch"),
    ("MultiStepLR negative milestone", lambda: fs.MultiStepLR(opt(), [3, -1]), "milestones"),
    ("MultiStepLR float milestone", lambda: fs.MultiStepLR(opt(), [3.5]), "milestones"),  # type: ignore[list-item]
    ("MultiStepLR gamma nan", lambda: fs.MultiStepLR(opt(), [3], gamma=float("nan")), "gamma"),
    ("ConstantLR factor > 1", lambda: fs.ConstantLR(opt(), factor=1.5), "factor"),
    ("ConstantLR factor < 0", lambda: fs.ConstantLR(opt(), factor=-0.1), "factor"),
    ("ConstantLR total_iters", lambda: fs.ConstantLR(opt(), total_iters=-1), "total_iters"),
    ("LinearLR start_factor 0", lambda: fs.LinearLR(opt(), start_factor=0.0), "start_factor"),
    ("LinearLR start_factor > 1", lambda: fs.LinearLR(opt(), start_factor=1.5), "start_factor"),
    ("LinearLR end_factor", lambda: fs.LinearLR(opt(), end_factor=-0.5), "end_factor"),
    ("LinearLR total_iters", lambda: fs.LinearLR(opt(), total_iters=0), "total_iters"),
    ("ExponentialLR gamma", lambda: fs.ExponentialLR(opt(), gamma=-1.0), "gamma"),
    ("PolynomialLR total_iters", lambda: fs.PolynomialLR(opt(), total_iters=0), "total_iters"),
    ("PolynomialLR power", lambda: fs.PolynomialLR(opt(), power=-1.0), "power"),
    ("CosineAnnealingLR T_max", lambda: fs.CosineAnnealingLR(opt(), T_max=0), "T_max"),
    ("CosineAnnealingLR eta_min", lambda: fs.CosineAnnealingLR(opt(), 10, eta_min=float("inf")), "eta_min"),
    ("CAWR T_0", lambda: fs.CosineAnnealingWarmRestarts(opt(), T_0=0), "T_0"),
    ("CAWR T_0 float", lambda: fs.CosineAnnealingWarmRestarts(opt(), T_0=2.0), "T_0"),  # type: ignore[arg-type]
    ("CAWR T_mult", lambda: fs.CosineAnnealingWarmRestarts(opt(), 5, T_mult=0), "T_mult"),
    ("CAWR eta_min", lambda: fs.CosineAnnealingWarmRestarts(opt(), 5, eta_min="0"), "eta_min"),  # type: ignore[arg-type]
    ("CAWR negative epoch", lambda: fs.CosineAnnealingWarmRestarts(opt(), 5).step(-1), "epoch"),
    ("CyclicLR step_size_up 0", lambda: fs.CyclicLR(opt(), 0.01, 0.1, step_size_up=0), "step_size_up"),
    ("CyclicLR step_size_up negative", lambda: fs.CyclicLR(opt(), 0.01, 0.1, step_size_up=-5), "step_size_up"),
    ("CyclicLR step_size_down negative", lambda: fs.CyclicLR(opt(), 0.01, 0.1, step_size_down=-1), "step_size_down"),
    ("CyclicLR mode", lambda: fs.CyclicLR(opt(), 0.01, 0.1, mode="saw"), "mode"),  # type: ignore[arg-type]
    ("CyclicLR scale_mode", lambda: fs.CyclicLR(opt(), 0.01, 0.1, scale_mode="epoch"), "scale_mode"),  # type: ignore[arg-type]
    ("CyclicLR base_lr per group", lambda: fs.CyclicLR(opt(), [0.01, 0.02, 0.03], 0.1), "base_lr"),
    ("CyclicLR max_lr per group", lambda: fs.CyclicLR(opt(), 0.01, [0.1]), "max_lr"),
    ("CyclicLR base_momentum per group", lambda: fs.CyclicLR(opt(), 0.01, 0.1, base_momentum=[0.8]), "base_momentum"),
    ("CyclicLR no momentum", lambda: fs.CyclicLR(opt("plain"), 0.01, 0.1), "cycle_momentum"),
    ("OneCycleLR pct_start > 1", lambda: fs.OneCycleLR(opt(), 0.1, total_steps=100, pct_start=1.5), "pct_start"),
    ("OneCycleLR pct_start < 0", lambda: fs.OneCycleLR(opt(), 0.1, total_steps=100, pct_start=-0.1), "pct_start"),
    ("OneCycleLR pct_start*T == 1", lambda: fs.OneCycleLR(opt(), 0.1, total_steps=10, pct_start=0.1), "pct_start"),
    ("OneCycleLR total_steps", lambda: fs.OneCycleLR(opt(), 0.1, total_steps=0), "total_steps"),
    ("OneCycleLR epochs", lambda: fs.OneCycleLR(opt(), 0.1, epochs=-2, steps_per_epoch=10), "epochs"),
    ("OneCycleLR steps_per_epoch", lambda: fs.OneCycleLR(opt(), 0.1, epochs=2, steps_per_epoch=0), "steps_per_epoch"),
    ("OneCycleLR no length", lambda: fs.OneCycleLR(opt(), 0.1, epochs=2), "total_steps"),
    ("OneCycleLR anneal_strategy", lambda: fs.OneCycleLR(opt(), 0.1, 10, anneal_strategy="exp"), "anneal_strategy"),  # type: ignore[arg-type]
    ("OneCycleLR div_factor", lambda: fs.OneCycleLR(opt(), 0.1, 10, div_factor=0.0), "div_factor"),
    ("OneCycleLR final_div_factor", lambda: fs.OneCycleLR(opt(), 0.1, 10, final_div_factor=-1.0), "final_div_factor"),
    ("OneCycleLR max_lr per group", lambda: fs.OneCycleLR(opt(), [0.1, 0.2, 0.3], 10), "max_lr"),
    ("OneCycleLR no momentum", lambda: fs.OneCycleLR(opt("plain"), 0.1, 10), "cycle_momentum"),
    ("Plateau factor 1", lambda: fs.ReduceLROnPlateau(opt(), factor=1.0), "factor"),
    ("Plateau factor > 1", lambda: fs.ReduceLROnPlateau(opt(), factor=2.0), "factor"),
    ("Plateau factor < 0", lambda: fs.ReduceLROnPlateau(opt(), factor=-0.5), "factor"),
    ("Plateau mode", lambda: fs.ReduceLROnPlateau(opt(), mode="up"), "mode"),  # type: ignore[arg-type]
    ("Plateau threshold_mode", lambda: fs.ReduceLROnPlateau(opt(), threshold_mode="x"), "threshold_mode"),  # type: ignore[arg-type]
    ("Plateau threshold", lambda: fs.ReduceLROnPlateau(opt(), threshold=-1e-3), "threshold"),
    ("Plateau patience", lambda: fs.ReduceLROnPlateau(opt(), patience=-1), "patience"),
    ("Plateau cooldown", lambda: fs.ReduceLROnPlateau(opt(), cooldown=-1), "cooldown"),
    ("Plateau min_lr per group", lambda: fs.ReduceLROnPlateau(opt(), min_lr=[0.0, 0.0, 0.0]), "min_lr"),
    ("Plateau min_lr negative", lambda: fs.ReduceLROnPlateau(opt(), min_lr=-1.0), "min_lr"),
    ("Plateau eps", lambda: fs.ReduceLROnPlateau(opt(), eps=-1.0), "eps"),
    ("LambdaLR per group", lambda: fs.LambdaLR(opt(), [lambda e: 1.0] * 3), "lr_lambda"),
    ("MultiplicativeLR per group", lambda: fs.MultiplicativeLR(opt(), [lambda e: 1.0]), "lr_lambda"),
]


def _sequential_mismatch() -> object:
    o = opt()
    return fs.SequentialLR(o, [sub(o), sub(o)], milestones=[3, 6])


def _sequential_unsorted() -> object:
    o = opt()
    return fs.SequentialLR(o, [sub(o), sub(o), sub(o)], milestones=[6, 3])


def _sequential_negative() -> object:
    o = opt()
    return fs.SequentialLR(o, [sub(o), sub(o)], milestones=[-1])


def _sequential_other_optimizer() -> object:
    o = opt()
    return fs.SequentialLR(o, [sub(o), sub(opt())], milestones=[3])


def _sequential_plateau() -> object:
    o = opt()
    return fs.SequentialLR(o, [sub(o), fs.ReduceLROnPlateau(o)], milestones=[3])  # type: ignore[list-item]


def _chained_other_optimizer() -> object:
    o = opt()
    return fs.ChainedScheduler([sub(o), sub(opt())])


def _chained_plateau() -> object:
    o = opt()
    return fs.ChainedScheduler([sub(o), fs.ReduceLROnPlateau(o)])  # type: ignore[list-item]


CLASS_CASES += [
    ("SequentialLR mismatched milestones", _sequential_mismatch, "milestones"),
    ("SequentialLR unsorted milestones", _sequential_unsorted, "milestones"),
    ("SequentialLR negative milestones", _sequential_negative, "milestones"),
    ("SequentialLR empty", lambda: fs.SequentialLR(opt(), [], milestones=[]), "schedulers"),
    ("SequentialLR other optimizer", _sequential_other_optimizer, "schedulers"),
    ("SequentialLR plateau", _sequential_plateau, "schedulers"),
    ("ChainedScheduler empty", lambda: fs.ChainedScheduler([]), "schedulers"),
    ("ChainedScheduler other optimizer", _chained_other_optimizer, "schedulers"),
    ("ChainedScheduler plateau", _chained_plateau, "schedulers"),
]


@pytest.mark.parametrize(("factory", "arg"), [c[1:] for c in CLASS_CASES], ids=[c[0] for c in CLASS_CASES])
def test_class_arguments(factory: Callable[[], object], arg: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{re.escape(arg)}\b"):
        factory()


FUNCTION_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("constant nan", lambda: fs.constant(float("nan")), "value"),
    ("linear transition_steps 0", lambda: fs.linear(0.0, 1.0, 0), "transition_steps"),
    ("linear transition_steps negative", lambda: fs.linear(0.0, 1.0, -10), "transition_steps"),
    ("linear transition_begin", lambda: fs.linear(0.0, 1.0, 10, transition_begin=-1), "transition_begin"),
    ("polynomial power", lambda: fs.polynomial(1.0, 0.0, -2.0, 10), "power"),
    ("polynomial init_value", lambda: fs.polynomial("1", 0.0, 1.0, 10), "init_value"),  # type: ignore[arg-type]
    ("cosine_decay decay_steps", lambda: fs.cosine_decay(0.1, 0), "decay_steps"),
    ("cosine_decay alpha", lambda: fs.cosine_decay(0.1, 10, alpha=float("inf")), "alpha"),
    ("cosine_decay exponent", lambda: fs.cosine_decay(0.1, 10, exponent=-1.0), "exponent"),
    ("warmup_cosine warmup_steps", lambda: fs.warmup_cosine_decay(0.0, 0.1, -1, 10), "warmup_steps"),
    ("warmup_cosine decay_steps <= warmup", lambda: fs.warmup_cosine_decay(0.0, 0.1, 10, 10), "decay_steps"),
    ("exponential transition_steps", lambda: fs.exponential_decay(0.1, 0, 0.5), "transition_steps"),
    ("exponential transition_steps negative", lambda: fs.exponential_decay(0.1, -5, 0.5), "transition_steps"),
    ("exponential decay_rate", lambda: fs.exponential_decay(0.1, 10, 0.0), "decay_rate"),
    (
        "exponential transition_begin",
        lambda: fs.exponential_decay(0.1, 10, 0.5, transition_begin=-2),
        "transition_begin",
    ),
    ("exponential end_value", lambda: fs.exponential_decay(0.1, 10, 0.5, end_value=float("nan")), "end_value"),
    ("piecewise negative boundary", lambda: fs.piecewise_constant(0.1, {-3: 0.5}), "boundaries_and_scales"),
    ("piecewise negative scale", lambda: fs.piecewise_constant(0.1, {3: -0.5}), "boundaries_and_scales"),
    ("one_cycle pct_start > 1", lambda: fs.one_cycle(100, 0.1, pct_start=1.5), "pct_start"),
    ("one_cycle pct_start < 0", lambda: fs.one_cycle(100, 0.1, pct_start=-0.2), "pct_start"),
    ("one_cycle pct_start*T == 1", lambda: fs.one_cycle(10, 0.1, pct_start=0.1), "pct_start"),
    ("one_cycle total_steps", lambda: fs.one_cycle(0, 0.1), "total_steps"),
    ("one_cycle anneal_strategy", lambda: fs.one_cycle(10, 0.1, anneal_strategy="exp"), "anneal_strategy"),  # type: ignore[arg-type]
    ("one_cycle div_factor", lambda: fs.one_cycle(10, 0.1, div_factor=0.0), "div_factor"),
    ("one_cycle final_div_factor", lambda: fs.one_cycle(10, 0.1, final_div_factor=-1.0), "final_div_factor"),
    ("one_cycle_momentum pct_start", lambda: fs.one_cycle_momentum(100, pct_start=2.0), "pct_start"),
    (
        "one_cycle_momentum base_momentum",
        lambda: fs.one_cycle_momentum(100, base_momentum=float("nan")),
        "base_momentum",
    ),
    ("sgdr t_0", lambda: fs.sgdr(0.1, 0), "t_0"),
    ("sgdr t_mult", lambda: fs.sgdr(0.1, 5, t_mult=0), "t_mult"),
    ("join mismatched boundaries", lambda: fs.join([fs.constant(1.0), fs.constant(2.0)], [3, 6]), "boundaries"),
    ("join unsorted boundaries", lambda: fs.join([1.0, 2.0, 3.0], [6, 3]), "boundaries"),
    ("join negative boundaries", lambda: fs.join([1.0, 2.0], [-1]), "boundaries"),
    ("join empty", lambda: fs.join([], []), "schedules"),
]


@pytest.mark.parametrize(("factory", "arg"), [c[1:] for c in FUNCTION_CASES], ids=[c[0] for c in FUNCTION_CASES])
def test_function_arguments(factory: Callable[[], object], arg: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{re.escape(arg)}\b"):
        factory()


def test_messages_show_the_bad_value() -> None:
    with pytest.raises(ValueError, match=r"pct_start must be in \[0, 1\], got 1\.5"):
        fs.OneCycleLR(opt(), 0.1, total_steps=100, pct_start=1.5)
    with pytest.raises(ValueError, match=r"pct_start must be in \[0, 1\], got 1\.5"):
        fs.one_cycle(100, 0.1, pct_start=1.5)
    with pytest.raises(ValueError, match=r"factor must be in \[0, 1\], got 1\.5"):
        fs.ConstantLR(opt(), factor=1.5)
    with pytest.raises(ValueError, match=r"milestones must have len\(schedulers\) - 1 = 1 entries, got 2"):
        _sequential_mismatch()


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="lr_lambda"):
        fs.LambdaLR(opt(), 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="lr_lambda"):
        fs.MultiplicativeLR(opt(), [lambda e: 1.0, "x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="scale_fn"):
        fs.CyclicLR(opt(), 0.01, 0.1, scale_fn=3.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"schedules\[1\]"):
        fs.join([1.0, "x"], [3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not an optimizer"):
        fs.ReduceLROnPlateau(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="schedulers"):
        o = opt()
        fs.ChainedScheduler([sub(o), object()])  # type: ignore[list-item]


def test_a_failed_construction_leaves_the_optimizer_alone() -> None:
    o = opt("plain")
    before = [dict(g) for g in o.param_groups]
    for make in (
        lambda: fs.CyclicLR(o, 0.01, 0.1),  # no momentum to cycle
        lambda: fs.CyclicLR(o, 0.01, 0.1, step_size_up=0, cycle_momentum=False),
        lambda: fs.CyclicLR(o, 0.01, [0.1], cycle_momentum=False),
        lambda: fs.OneCycleLR(o, 0.1, total_steps=100, pct_start=1.5),
        lambda: fs.OneCycleLR(o, 0.1, 10),
        lambda: fs.OneCycleLR(o, [0.1], 10, cycle_momentum=False),
    ):
        with pytest.raises(ValueError):
            make()
    assert o.param_groups == before
