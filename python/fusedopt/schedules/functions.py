"""Schedules as pure functions of the step count (optax's shape).

Each factory returns a :class:`Schedule`: a small immutable, picklable,
comparable callable ``step -> float``. Any float hyperparameter of a fusedopt
optimizer may be given as a schedule; the optimizer evaluates it with the
number of steps taken before the current one (0 on the first step), so a run
resumed from a state dict continues exactly: the value depends on the step
count alone, never on history.

Negative steps are treated as step 0. Unlike the scheduler classes, these
never raise past their end: they hold their final value (``cosine_decay``
does not oscillate like ``CosineAnnealingLR``, ``one_cycle`` does not bounce
or raise like ``OneCycleLR``).
"""

from __future__ import annotations

import itertools
import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Union

from .._checks import float_or_nan

__all__ = [
    "Schedule",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "join",
    "linear",
    "one_cycle",
    "one_cycle_momentum",
    "piecewise_constant",
    "polynomial",
    "sgdr",
    "warmup_cosine_decay",
]

ScheduleLike = Union["Schedule", Callable[[int], float], float]


class Schedule:
    """Base of the callables returned by this module: ``value = schedule(step)``."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError


# --------------------------------------------------------------------------
# Validation (every ValueError names the argument).
# --------------------------------------------------------------------------
def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float_or_nan(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _int(name: str, value: object, minimum: int) -> int:
    """An integer (bool excluded) >= ``minimum``, and below 2**53: steps are used in float64
    arithmetic, where a larger one is not exact (or overflows)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r:.80}")
    if int(value) >= 2**53:
        raise ValueError(f"{name} must be an integer below 2**53 (exact as a float64), got {value!r:.80}")
    return int(value)


def _step(step: int) -> int | float:
    """Negative steps mean 'not started yet'."""
    return step if step > 0 else 0


# --------------------------------------------------------------------------
# Schedules.
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class _Constant(Schedule):
    value: float

    def __call__(self, step: int) -> float:
        return self.value


def constant(value: float) -> Schedule:
    """The same value at every step (a float hyperparameter, as a schedule)."""
    return _Constant(_real("value", value))


@dataclass(frozen=True)
class _Polynomial(Schedule):
    init_value: float
    end_value: float
    power: float
    transition_steps: int
    transition_begin: int

    def __call__(self, step: int) -> float:
        count = min(max(step - self.transition_begin, 0), self.transition_steps)
        frac = 1.0 - count / self.transition_steps
        return (self.init_value - self.end_value) * float(frac**self.power) + self.end_value


def polynomial(
    init_value: float, end_value: float, power: float, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """(init - end)·(1 - t/T)^power + end with t = clip(step - begin, 0, T).

    Holds ``init_value`` before ``transition_begin`` and ``end_value`` after
    ``transition_begin + transition_steps``. ``polynomial(lr, 0.0, p, T)``
    equals torch's ``PolynomialLR(T, p)`` closed form.
    """
    return _Polynomial(
        _real("init_value", init_value),
        _real("end_value", end_value),
        _nonneg("power", power),
        _int("transition_steps", transition_steps, 1),
        _int("transition_begin", transition_begin, 0),
    )


def _nonneg(name: str, value: object) -> float:
    v = _real(name, value)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def linear(init_value: float, end_value: float, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """Linear ramp from ``init_value`` to ``end_value`` over ``transition_steps``
    (linear warmup: ``linear(0.0, peak, warmup_steps)``), then held."""
    return polynomial(init_value, end_value, 1.0, transition_steps, transition_begin)


@dataclass(frozen=True)
class _Cosine(Schedule):
    init_value: float
    end_value: float
    decay_steps: int
    exponent: float

    def __call__(self, step: int) -> float:
        t = min(_step(step), self.decay_steps)
        c = (1 + math.cos(math.pi * t / self.decay_steps)) / 2
        return self.end_value + (self.init_value - self.end_value) * float(c**self.exponent)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0) -> Schedule:
    """Cosine annealing from ``init_value`` to ``alpha·init_value`` over
    ``decay_steps``, then held (no oscillation, unlike CosineAnnealingLR).

    value = end + (init - end)·((1 + cos(π·t/T))/2)^exponent, end = alpha·init.
    """
    init = _real("init_value", init_value)
    a = _real("alpha", alpha)
    return _Cosine(init, a * init, _int("decay_steps", decay_steps, 1), _nonneg("exponent", exponent))


@dataclass(frozen=True)
class _WarmupCosine(Schedule):
    init_value: float
    peak_value: float
    warmup_steps: int
    decay_steps: int
    end_value: float
    exponent: float

    def __call__(self, step: int) -> float:
        s = _step(step)
        if s < self.warmup_steps:
            return self.init_value + (self.peak_value - self.init_value) * s / self.warmup_steps
        span = self.decay_steps - self.warmup_steps
        t = min(s - self.warmup_steps, span)
        c = (1 + math.cos(math.pi * t / span)) / 2
        return self.end_value + (self.peak_value - self.end_value) * float(c**self.exponent)


def warmup_cosine_decay(
    init_value: float,
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    end_value: float = 0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps``,
    then cosine decay to ``end_value``; ``decay_steps`` counts the warmup too
    (optax's convention), so the decay ends at step ``decay_steps``."""
    w = _int("warmup_steps", warmup_steps, 0)
    d = _int("decay_steps", decay_steps, 1)
    if d <= w:
        raise ValueError(f"decay_steps must be > warmup_steps ({w}), got {decay_steps!r}")
    return _WarmupCosine(
        _real("init_value", init_value),
        _real("peak_value", peak_value),
        w,
        d,
        _real("end_value", end_value),
        _nonneg("exponent", exponent),
    )


@dataclass(frozen=True)
class _Exponential(Schedule):
    init_value: float
    transition_steps: int
    decay_rate: float
    transition_begin: int
    staircase: bool
    end_value: float | None

    def __call__(self, step: int) -> float:
        count = step - self.transition_begin
        if count <= 0:
            return self.init_value
        p = count / self.transition_steps
        if self.staircase:
            p = math.floor(p)
        value = self.init_value * float(self.decay_rate**p)
        if self.end_value is not None:
            value = max(value, self.end_value) if self.decay_rate < 1 else min(value, self.end_value)
        return value


def exponential_decay(
    init_value: float,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value: float | None = None,
) -> Schedule:
    """init·decay_rate^((step - begin)/transition_steps), optax's form.

    ``staircase=True`` floors the exponent (step decay every
    ``transition_steps``); ``end_value`` bounds the result (a floor when
    decaying, a ceiling when ``decay_rate > 1``). ``transition_steps=1`` is
    "multiply by decay_rate at every update".
    """
    rate = _real("decay_rate", decay_rate)
    if rate <= 0:
        raise ValueError(f"decay_rate must be > 0, got {decay_rate!r}")
    return _Exponential(
        _real("init_value", init_value),
        _int("transition_steps", transition_steps, 1),
        rate,
        _int("transition_begin", transition_begin, 0),
        bool(staircase),
        None if end_value is None else _real("end_value", end_value),
    )


@dataclass(frozen=True)
class _Piecewise(Schedule):
    boundaries: tuple[int, ...]
    values: tuple[float, ...]

    def __call__(self, step: int) -> float:
        return self.values[bisect_right(self.boundaries, step)]


def piecewise_constant(init_value: float, boundaries_and_scales: Mapping[int, float] | None = None) -> Schedule:
    """``init_value`` multiplied by ``scale`` from each ``boundary`` step on
    (cumulatively), like MultiStepLR's milestones: ``{30: 0.1, 60: 0.1}``."""
    value = _real("init_value", init_value)
    items = sorted((boundaries_and_scales or {}).items())
    bounds: list[int] = []
    values = [value]
    for b, s in items:
        bounds.append(_int("boundaries_and_scales key (a boundary step)", b, 0))
        scale = _real("boundaries_and_scales value (a scale)", s)
        if scale < 0:
            raise ValueError(f"boundaries_and_scales scales must be >= 0, got {s!r} at boundary {b}")
        values.append(values[-1] * scale)
    return _Piecewise(tuple(bounds), tuple(values))


@dataclass(frozen=True)
class _OneCycle(Schedule):
    # (end_step, start_value, end_value) per phase, torch's OneCycleLR geometry.
    phases: tuple[tuple[float, float, float], ...]
    total_steps: int
    anneal_strategy: str

    def __call__(self, step: int) -> float:
        s = min(_step(step), self.total_steps - 1)
        start = 0.0
        last = len(self.phases) - 1
        for i, (end, a, b) in enumerate(self.phases):
            if s <= end or i == last:
                pct = (s - start) / (end - start)
                if self.anneal_strategy == "cos":
                    return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (b - a) * pct + a
            start = end
        raise AssertionError("unreachable")


def _one_cycle_args(total_steps: int, pct_start: float, anneal_strategy: str) -> tuple[int, float, float]:
    t = _int("total_steps", total_steps, 1)
    p = _real("pct_start", pct_start)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"pct_start must be in [0, 1], got {pct_start!r}")
    if float(p * t) == 1.0:
        raise ValueError(f"pct_start * total_steps must not be 1 (zero-length warm-up), got {pct_start!r} * {t}")
    if anneal_strategy not in ("cos", "linear"):
        raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
    return t, float(p * t) - 1, float(2 * p * t) - 2


def one_cycle(
    total_steps: int,
    peak_value: float,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    three_phase: bool = False,
) -> Schedule:
    """The 1cycle learning rate: OneCycleLR's values for steps 0..total_steps-1.

    Rises from peak/div_factor to ``peak_value`` until step
    pct_start·T - 1, then anneals to peak/div_factor/final_div_factor at
    T - 1 and holds it (no bounce, no error past the end).
    """
    t, end1, end2 = _one_cycle_args(total_steps, pct_start, anneal_strategy)
    peak = _real("peak_value", peak_value)
    if _real("div_factor", div_factor) <= 0:
        raise ValueError(f"div_factor must be > 0, got {div_factor!r}")
    if _real("final_div_factor", final_div_factor) <= 0:
        raise ValueError(f"final_div_factor must be > 0, got {final_div_factor!r}")
    initial = peak / div_factor
    low = initial / final_div_factor
    phases: tuple[tuple[float, float, float], ...]
    if three_phase:
        phases = ((end1, initial, peak), (end2, peak, initial), (float(t - 1), initial, low))
    else:
        phases = ((end1, initial, peak), (float(t - 1), peak, low))
    return _OneCycle(phases, t, anneal_strategy)


def one_cycle_momentum(
    total_steps: int,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    pct_start: float = 0.3,
    anneal_strategy: Literal["cos", "linear"] = "cos",
    three_phase: bool = False,
) -> Schedule:
    """The momentum (or beta1) companion of :func:`one_cycle`: falls from
    ``max_momentum`` to ``base_momentum`` while the lr rises, then back."""
    t, end1, end2 = _one_cycle_args(total_steps, pct_start, anneal_strategy)
    lo = _real("base_momentum", base_momentum)
    hi = _real("max_momentum", max_momentum)
    phases: tuple[tuple[float, float, float], ...]
    if three_phase:
        phases = ((end1, hi, lo), (end2, lo, hi), (float(t - 1), hi, hi))
    else:
        phases = ((end1, hi, lo), (float(t - 1), lo, hi))
    return _OneCycle(phases, t, anneal_strategy)


@dataclass(frozen=True)
class _SGDR(Schedule):
    init_value: float
    t_0: int
    t_mult: int
    end_value: float

    def __call__(self, step: int) -> float:
        t_cur, t_i = _step(step), self.t_0
        if self.t_mult == 1:
            t_cur = t_cur % t_i
        else:
            while t_cur >= t_i:
                t_cur -= t_i
                t_i *= self.t_mult
        lo = self.end_value
        return lo + (self.init_value - lo) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


def sgdr(init_value: float, t_0: int, t_mult: int = 1, end_value: float = 0.0) -> Schedule:
    """Cosine annealing with warm restarts (CosineAnnealingWarmRestarts's
    values at integer steps): periods t_0, t_0·t_mult, t_0·t_mult², ..."""
    return _SGDR(
        _real("init_value", init_value),
        _int("t_0", t_0, 1),
        _int("t_mult", t_mult, 1),
        _real("end_value", end_value),
    )


@dataclass(frozen=True)
class _Join(Schedule):
    schedules: tuple[Callable[[int], float], ...]
    boundaries: tuple[int, ...]

    def __call__(self, step: int) -> float:
        i = bisect_right(self.boundaries, step)
        offset = self.boundaries[i - 1] if i > 0 else 0
        return float(self.schedules[i](step - offset))


def join(schedules: Sequence[ScheduleLike], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at its
    own step 0 (optax's ``join_schedules``). A number stands for a constant."""
    scheds: list[Callable[[int], float]] = []
    for i, s in enumerate(schedules):
        if isinstance(s, numbers.Real) and not isinstance(s, bool):
            scheds.append(constant(s))
        elif callable(s):
            scheds.append(s)
        else:
            raise TypeError(f"schedules[{i}] must be a callable or a number, got {type(s).__name__}")
    if not scheds:
        raise ValueError("schedules must not be empty")
    bounds = list(boundaries)
    if len(bounds) != len(scheds) - 1:
        raise ValueError(f"boundaries must have len(schedules) - 1 = {len(scheds) - 1} entries, got {len(bounds)}")
    for b in bounds:
        if isinstance(b, bool) or not isinstance(b, numbers.Integral) or b < 0:
            raise ValueError(f"boundaries must be non-negative integers, got {bounds!r}")
    if any(b < a for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"boundaries must be non-decreasing, got {bounds!r}")
    return _Join(tuple(scheds), tuple(int(b) for b in bounds))
