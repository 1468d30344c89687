"""Scheduler classes that drive a fusedopt optimizer, with torch 2.13 semantics.

Every class follows the ``torch.optim.lr_scheduler`` protocol and arithmetic
(same constructor arguments, defaults, recursive/closed forms and operation
order), so the learning rates equal torch's at every step to within rounding
of the same float operations. The quirks users trip over are kept on purpose
and documented on each class; ``docs/schedules.md`` lists them all.

The cyclic schedulers (:class:`CyclicLR`, :class:`OneCycleLR`,
:class:`CosineAnnealingWarmRestarts`) live in :mod:`.lr_scheduler_cyclic`.
"""

from __future__ import annotations

import copy
import itertools
import math
import numbers
import types
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, SupportsFloat, cast

from .._checks import float_or_nan
from .functions import _int as _check_int

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SequentialLR",
    "StepLR",
]



# --------------------------------------------------------------------------
# Shared helpers (also used by lr_scheduler_cyclic).
# --------------------------------------------------------------------------
class OptimizerLike(Protocol):
    """What a scheduler needs from an optimizer (torch's Optimizer duck type)."""

    param_groups: list[dict[str, Any]]
    defaults: dict[str, Any]


def _check_optimizer(optimizer: object) -> None:
    """Refuse objects that cannot be driven (no ``param_groups`` list)."""
    if not isinstance(getattr(optimizer, "param_groups", None), list):
        raise TypeError(f"{type(optimizer).__name__} is not an optimizer (it has no param_groups list)")


def _check_not_schedule(optimizer: OptimizerLike, keys: Iterable[str]) -> None:
    """A key cannot be driven both by a scheduler class and by a callable schedule.

    The optimizer evaluates a callable hyperparameter at every step, so a
    scheduler writing the same key would be overwritten (or would multiply a
    function by a float): refuse the mix up front, naming the group.
    """
    for i, group in enumerate(optimizer.param_groups):
        for key in keys:
            value = group.get(key)
            shown = key
            if key == "betas" and isinstance(value, (tuple, list)) and value and callable(value[0]):
                shown = "betas[0]"
            elif not callable(value):
                continue
            raise TypeError(
                f"param_groups[{i}]['{shown}'] is a schedule (a callable); a scheduler class cannot "
                f"also drive it. Give the optimizer a float {key} or drop the scheduler."
            )


def _check_real(name: str, value: object, ok: Callable[[float], bool], what: str) -> None:
    """``value`` must be a real number (NaN and bool refused) satisfying ``ok``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or math.isnan(float_or_nan(value))
        or not ok(float_or_nan(value))
    ):
        raise ValueError(f"{name} must be {what}, got {value!r:.80}")


def _format_param(name: str, optimizer: OptimizerLike, value: Any) -> list[Any]:
    """One finite number per param group: a scalar is broadcast, a sequence must match."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have one value per param group ({n}), got {len(value)}")
        for i, v in enumerate(value):
            _check_real(f"{name}[{i}]", v, math.isfinite, "a finite number")
        return list(value)
    _check_real(name, value, math.isfinite, "a finite number")
    return [value] * n


def _group_values(optimizer: OptimizerLike, key: str) -> list[Any]:
    """The current ``key`` of every param group, as a new list."""
    return [group[key] for group in optimizer.param_groups]


def _set_momentum(group: dict[str, Any], use_beta1: bool, value: float) -> None:
    """Adam-family optimizers keep momentum as betas[0]: write a new tuple."""
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


def _encode_fn(fn: Callable[..., Any] | None) -> dict[str, Any] | None:
    """torch's rule for saving lambdas: plain functions are not saved (None);
    callable objects save a copy of their ``__dict__``."""
    if fn is None or isinstance(fn, types.FunctionType):
        return None
    state = getattr(fn, "__dict__", None)
    return copy.deepcopy(state) if state is not None else None


def _restore_fn(fn: Callable[..., Any] | None, saved: dict[str, Any] | None) -> None:
    if saved is not None and fn is not None and hasattr(fn, "__dict__"):
        fn.__dict__.update(copy.deepcopy(saved))


def _check_schedulers(owner: str, optimizer: Any, schedulers: Sequence[Any]) -> None:
    """SequentialLR/ChainedScheduler: non-empty, same optimizer, no plateau."""
    if len(schedulers) < 1:
        raise ValueError(f"schedulers must contain at least one scheduler for {owner}, got none")
    for i, s in enumerate(schedulers):
        if not hasattr(s, "optimizer"):
            raise TypeError(f"schedulers[{i}] of {owner} has no `optimizer` attribute")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(
                f"schedulers[{i}] of {owner} is a ReduceLROnPlateau, which is not supported "
                "(its step() needs the metric)"
            )
        if s.optimizer is not optimizer:
            raise ValueError(f"schedulers[{i}] of {owner} drives a different optimizer than the others")


# --------------------------------------------------------------------------
# Base class.
# --------------------------------------------------------------------------
class LRScheduler:
    """Base of the scheduler classes (torch's ``LRScheduler`` protocol).

    Construction with ``last_epoch=-1`` stores each group's current lr as
    ``group['initial_lr']`` (with ``setdefault``: a second scheduler on the
    same optimizer sees the *original* lr) and then performs the epoch-0 step,
    so right after construction the groups already hold the epoch-0 values.
    With ``last_epoch >= 0`` (resuming) every group must already have
    ``'initial_lr'`` (KeyError otherwise).

    ``step()`` advances ``last_epoch`` by one and applies the *recursive*
    form (based on the current ``group['lr']``, so schedulers compose).
    ``step(epoch)`` jumps to ``epoch`` and uses the closed form where the
    class has one. torch deprecates the epoch argument; fusedopt keeps it
    without a warning because jumping is well defined with the closed form.
    Call ``scheduler.step()`` after ``optimizer.step(...)``.

    Subclasses implement :meth:`get_lr` (and optionally
    ``_get_closed_form_lr``). A group whose ``lr`` is a callable schedule
    raises TypeError: use one shape or the other for a given key.
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False
    _step_count: int
    _last_lr: list[float]
    base_lrs: list[float]
    last_epoch: int
    optimizer: OptimizerLike

    def __init__(self, optimizer: OptimizerLike, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        _check_int("last_epoch", last_epoch, -1)
        _check_not_schedule(optimizer, ("lr",))
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when resuming a "
                        f"scheduler with last_epoch={last_epoch}: load the optimizer's state "
                        "(which holds 'initial_lr') before building the scheduler"
                    )
        self.base_lrs = _group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        """The epoch-0 step performed by construction."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for the current ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The lrs written by the last step, one per param group."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (recursive form), or jump to ``epoch`` (closed form)."""
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | float | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch  # type: ignore[assignment]
                closed = getattr(self, "_get_closed_form_lr", None)
                values = closed() if closed is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = _group_values(self.optimizer, "lr")

    # The whole instance state except the optimizer, as in torch, so a torch
    # scheduler's state_dict loads here and vice versa. Deep-copied so that a
    # saved dict never aliases the live scheduler.
    _not_saved: tuple[str, ...] = ("optimizer",)

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state (everything but the optimizer)."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k not in self._not_saved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (load the optimizer's too)."""
        self.__dict__.update(copy.deepcopy(state_dict))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch})"


class _LambdaBase(LRScheduler):
    """Construction and saving rule shared by LambdaLR and MultiplicativeLR (torch's)."""

    lr_lambdas: list[Callable[[int], float]]
    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(
        self,
        optimizer: OptimizerLike,
        lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]],
        last_epoch: int = -1,
    ) -> None:
        self.optimizer = optimizer
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def state_dict(self) -> dict[str, Any]:
        """Plain functions are saved as None, callable objects by ``__dict__``."""
        state = super().state_dict()
        state["lr_lambdas"] = [_encode_fn(fn) for fn in self.lr_lambdas]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """The lambdas themselves come from construction; only object state loads."""
        state = dict(state_dict)
        saved = state.pop("lr_lambdas", [None] * len(self.lr_lambdas))
        super().load_state_dict(state)
        for fn, s in zip(self.lr_lambdas, saved, strict=True):
            _restore_fn(fn, s)


def _lambdas(optimizer: OptimizerLike, lr_lambda: Any) -> list[Callable[[int], float]]:
    _check_optimizer(optimizer)
    n = len(optimizer.param_groups)
    fns = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * n
    if len(fns) != n:
        raise ValueError(f"lr_lambda must be one callable or one per param group ({n}), got {len(fns)}")
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"lr_lambda must be callable, got {type(fn).__name__}")
    return fns


class LambdaLR(_LambdaBase):
    """lr = initial_lr · lr_lambda(epoch), one lambda or one per group.

    Quirk: construction applies ``lr_lambda(0)`` right away (the epoch-0
    step), so the lr you passed to the optimizer is used only as ``initial_lr``.
    Plain-function lambdas are not saved in :meth:`state_dict` (None); callable
    objects save their ``__dict__``.
    """

    def get_lr(self) -> list[float]:
        return [base * fn(self.last_epoch) for fn, base in zip(self.lr_lambdas, self.base_lrs, strict=True)]


class MultiplicativeLR(_LambdaBase):
    """lr ← lr · lr_lambda(epoch) at every step after construction.

    The "multiply the learning rate by a decay rate at every update" recipe:
    ``MultiplicativeLR(opt, lambda e: 0.99)``. Construction leaves the lr
    unchanged. There is no closed form: ``step(epoch)`` multiplies once by
    ``lr_lambda(epoch)``.
    """

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        groups = self.optimizer.param_groups
        return [g["lr"] * fn(self.last_epoch) for fn, g in zip(self.lr_lambdas, groups, strict=True)]


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs (step decay).

    Recursive: lr·gamma when ``epoch`` is a non-zero multiple of ``step_size``.
    Closed form (``step(epoch)``): initial_lr · gamma^(epoch // step_size).
    Because the recursion multiplies the *current* lr, changes made to the lr
    from outside persist.
    """

    def __init__(self, optimizer: OptimizerLike, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = _check_int("step_size", step_size, 1)
        _check_real("gamma", gamma, lambda v: v >= 0, ">= 0")
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return _group_values(self.optimizer, "lr")
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone epoch.

    Quirk: milestones are counted (a ``Counter``), so a milestone listed
    twice multiplies by gamma² at that epoch. They need not be sorted.
    Closed form: initial_lr · gamma^(number of milestones <= epoch).
    """

    def __init__(
        self, optimizer: OptimizerLike, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        ms = list(milestones)
        for m in ms:
            if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 0:
                raise ValueError(f"milestones must be non-negative integers, got {ms!r}")
        self.milestones = Counter(int(m) for m in ms)
        _check_real("gamma", gamma, lambda v: v >= 0, ">= 0")
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return _group_values(self.optimizer, "lr")
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [g["lr"] * factor for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        ms = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(ms, self.last_epoch) for base in self.base_lrs]


class ConstantLR(LRScheduler):
    """lr · factor for epochs < ``total_iters``, then the lr divided back.

    Quirks: construction already applies the factor (epoch 0). The recursion
    multiplies by 1/factor at ``total_iters``, so with ``factor == 0`` torch
    divides by zero there; fusedopt instead restores initial_lr (the closed
    form) at that epoch.
    """

    def __init__(
        self, optimizer: OptimizerLike, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1
    ) -> None:
        _check_real("factor", factor, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        self.factor = factor
        self.total_iters = _check_int("total_iters", total_iters, 0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] * self.factor for g in groups]
        if self.last_epoch != self.total_iters:
            return _group_values(self.optimizer, "lr")
        if self.factor == 0:
            return self._get_closed_form_lr()
        return [g["lr"] * (1.0 / self.factor) for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            base * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor)) for base in self.base_lrs
        ]


class LinearLR(LRScheduler):
    """Linear ramp of the multiplier from ``start_factor`` to ``end_factor``
    over ``total_iters`` epochs (linear warmup), then constant.

    Construction applies ``start_factor`` (epoch 0). The recursive form
    multiplies by the ratio of consecutive multipliers, as torch does.
    Closed form: initial_lr · (start + (end - start) · min(total_iters, epoch) / total_iters).
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
        last_epoch: int = -1,
    ) -> None:
        _check_real("start_factor", start_factor, lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        _check_real("end_factor", end_factor, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = _check_int("total_iters", total_iters, 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0:
            return [g["lr"] * self.start_factor for g in groups]
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        d = self.end_factor - self.start_factor
        ratio = 1.0 + d / (self.total_iters * self.start_factor + (self.last_epoch - 1) * d)
        return [g["lr"] * ratio for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        d = self.end_factor - self.start_factor
        return [
            base * (self.start_factor + d * min(self.total_iters, self.last_epoch) / self.total_iters)
            for base in self.base_lrs
        ]


class ExponentialLR(LRScheduler):
    """lr ← lr · gamma at every step after construction (exponential decay).

    Closed form: initial_lr · gamma^epoch.
    """

    def __init__(self, optimizer: OptimizerLike, gamma: float, last_epoch: int = -1) -> None:
        _check_real("gamma", gamma, lambda v: v >= 0, ">= 0")
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma**self.last_epoch for base in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr = initial_lr · (1 - min(epoch, total_iters)/total_iters)^power.

    Quirk: there is no floor: the lr reaches exactly 0 at ``total_iters`` and
    stays there.
    """

    def __init__(
        self, optimizer: OptimizerLike, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1
    ) -> None:
        self.total_iters = _check_int("total_iters", total_iters, 1)
        _check_real("power", power, lambda v: v >= 0, ">= 0")
        self.power = power
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial or self.last_epoch > self.total_iters:
            return _group_values(self.optimizer, "lr")
        t, e = self.total_iters, self.last_epoch
        decay = ((1.0 - e / t) / (1.0 - (e - 1) / t)) ** self.power
        return [g["lr"] * decay for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        t = self.total_iters
        return [base * (1.0 - min(t, self.last_epoch) / t) ** self.power for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from initial_lr to ``eta_min`` over ``T_max`` epochs.

    Quirk: past ``T_max`` the lr is **not** clamped: it rises back to
    initial_lr at 2·T_max and keeps oscillating with period 2·T_max. Stop
    stepping at T_max (or use :func:`fusedopt.schedules.cosine_decay`, which
    holds the final value) if you want it to stay at eta_min. Plain step()
    uses torch's recursive form; a scheduler stepped for the first time with
    ``last_epoch > 0`` uses the closed form
    eta_min + (initial_lr - eta_min)(1 + cos(π·epoch/T_max))/2.
    """

    def __init__(self, optimizer: OptimizerLike, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        _check_real("T_max", T_max, lambda v: v > 0, "> 0")
        _check_real("eta_min", eta_min, math.isfinite, "a finite number")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        e, tm, lo = self.last_epoch, self.T_max, self.eta_min
        groups = self.optimizer.param_groups
        if self._is_initial:
            return _group_values(self.optimizer, "lr")
        if self._step_count == 1 and e > 0:
            return [lo + (base - lo) * (1 + math.cos(e * math.pi / tm)) / 2 for base in self.base_lrs]
        if (e - 1 - tm) % (2 * tm) == 0:
            bump = (1 - math.cos(math.pi / tm)) / 2
            return [g["lr"] + (base - lo) * bump for base, g in zip(self.base_lrs, groups, strict=True)]
        ratio = (1 + math.cos(math.pi * e / tm)) / (1 + math.cos(math.pi * (e - 1) / tm))
        return [ratio * (g["lr"] - lo) + lo for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        lo = self.eta_min
        c = 1 + math.cos(math.pi * self.last_epoch / self.T_max)
        return [lo + (base - lo) * c / 2 for base in self.base_lrs]


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` when a metric stops improving.

    ``step(metric)`` counts epochs without improvement ("better" is
    ``a < best·(1 - threshold)`` in mode 'min'/'rel', ``a < best - threshold``
    in 'abs'; mirrored for 'max'); after more than ``patience`` of them every
    group gets ``max(lr·factor, min_lr)`` and a ``cooldown`` starts.

    Quirks: a reduction is applied only if it is larger than ``eps``
    (``old - new > eps``), so an lr already near ``min_lr`` stops moving; there
    is no initial step, no ``initial_lr`` and ``last_epoch`` starts at 0; if
    param groups are added later a scalar ``min_lr`` is re-broadcast.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        mode: Literal["min", "max"] = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: Literal["rel", "abs"] = "rel",
        cooldown: int = 0,
        min_lr: float | Sequence[float] = 0,
        eps: float = 1e-8,
    ) -> None:
        _check_real("factor", factor, lambda v: 0.0 <= v < 1.0, "in [0, 1)")
        self.factor = factor
        _check_optimizer(optimizer)
        _check_not_schedule(optimizer, ("lr",))
        self.optimizer = optimizer
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != len(optimizer.param_groups):
                raise ValueError(
                    f"min_lr must have one value per param group ({len(optimizer.param_groups)}), got {len(min_lr)}"
                )
            self.default_min_lr: float | None = None
            self.min_lrs = list(min_lr)
        else:
            self.default_min_lr = cast(float, min_lr)
            self.min_lrs = [min_lr] * len(optimizer.param_groups)
        for v in self.min_lrs:
            _check_real("min_lr", v, lambda x: x >= 0, ">= 0")
        self.patience = _check_int("patience", patience, 0)
        self.cooldown = _check_int("cooldown", cooldown, 0)
        _check_real("eps", eps, lambda v: v >= 0, ">= 0")
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = _group_values(optimizer, "lr")
        self._init_is_better(mode=mode, threshold=threshold, threshold_mode=threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record one epoch's metric and reduce the lr if it has plateaued."""
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = _group_values(self.optimizer, "lr")

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(
                    f"the optimizer has {len(groups)} param groups but min_lr was given for "
                    f"{len(self.min_lrs)}; set `min_lrs` to one value per group"
                )
            self.min_lrs = [self.default_min_lr] * len(groups)
        for i, group in enumerate(groups):
            old = float(group["lr"])
            new = max(old * self.factor, self.min_lrs[i])
            if old - new > self.eps:
                group["lr"] = new

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        _check_real("threshold", threshold, lambda v: v >= 0, ">= 0")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(mode=self.mode, threshold=self.threshold, threshold_mode=self.threshold_mode)

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, last_epoch={self.last_epoch})"


class _Composite(LRScheduler):
    """state_dict/load_state_dict for schedulers that own sub-schedulers."""

    _schedulers: Sequence[LRScheduler]
    _not_saved = ("optimizer", "_schedulers")

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        subs = state.pop("_schedulers")
        super().load_state_dict(state)
        for s, sub in zip(self._schedulers, subs, strict=True):
            s.load_state_dict(sub)


class SequentialLR(_Composite):
    """Run ``schedulers[i]`` between ``milestones[i-1]`` and ``milestones[i]``.

    Construction resets every group's lr to ``initial_lr``, undoes the
    sub-schedulers' own construction steps (``last_epoch -= 1``) and redoes
    the epoch-0 step of the scheduler active at epoch 0.

    Quirk: at a milestone the next scheduler is restarted at *its closed
    form for epoch 0* (``last_epoch = 0``), not continued recursively from
    the current lr. E.g. LinearLR(0.1, total_iters=3) then ExponentialLR(0.5)
    at milestone 3 gives .1, .4, .7, 1.0, .5, .25, ...
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        schedulers: Sequence[LRScheduler],
        milestones: Sequence[int],
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        _check_schedulers("SequentialLR", optimizer, schedulers)
        ms = list(milestones)
        if len(ms) != len(schedulers) - 1:
            raise ValueError(
                f"milestones must have len(schedulers) - 1 = {len(schedulers) - 1} entries, got {len(ms)}"
            )
        for m in ms:
            if isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 0:
                raise ValueError(f"milestones must be non-negative integers, got {ms!r}")
        if any(b < a for a, b in itertools.pairwise(ms)):
            raise ValueError(f"milestones must be non-decreasing, got {ms!r}")
        _check_int("last_epoch", last_epoch, -1)
        self._schedulers = list(schedulers)
        self._milestones = [int(m) for m in ms]
        self.last_epoch = last_epoch + 1
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        self.recursive_undo()
        idx = bisect_right(self._milestones, 0)
        self._schedulers[idx]._initial_step()
        self._last_lr = self._schedulers[idx].get_last_lr()

    def recursive_undo(self, sched: Any = None) -> None:
        """Step every (nested) sub-scheduler's ``last_epoch`` back by one."""
        s = self if sched is None else sched
        if hasattr(s, "_schedulers"):
            for sub in s._schedulers:
                self.recursive_undo(sub)
        elif hasattr(s, "last_epoch"):
            s.last_epoch -= 1

    def step(self) -> None:  # type: ignore[override]
        """One epoch: restart the next scheduler at a milestone, else step the active one."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several schedulers together; their recursive forms multiply.

    It does no step of its own at construction (each sub-scheduler already
    did). E.g. ConstantLR(0.1, total_iters=2) + ExponentialLR(0.9) gives
    .1, .09, .81, .729, ...
    """

    def __init__(self, schedulers: Sequence[LRScheduler], optimizer: OptimizerLike | None = None) -> None:
        if len(schedulers) < 1:
            raise ValueError("schedulers must contain at least one scheduler for ChainedScheduler, got none")
        opt = optimizer if optimizer is not None else schedulers[0].optimizer
        _check_schedulers("ChainedScheduler", opt, schedulers)
        self._schedulers = list(schedulers)
        self.optimizer = opt
        self._last_lr = _group_values(opt, "lr")

    def step(self) -> None:  # type: ignore[override]
        """Step every sub-scheduler in list order."""
        for s in self._schedulers:
            s.step()
        self._last_lr = _group_values(self.optimizer, "lr")
