"""Cyclic scheduler classes: CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts.

Same torch 2.13 protocol and arithmetic as :mod:`.lr_scheduler`; these three
also (CyclicLR, OneCycleLR) write the momentum, or beta1 of Adam-family
optimizers, into the param groups.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from .functions import _int as _check_int
from .lr_scheduler import (
    LRScheduler,
    OptimizerLike,
    _check_not_schedule,
    _check_optimizer,
    _check_real,
    _encode_fn,
    _format_param,
    _restore_fn,
    _set_momentum,
)

__all__ = ["CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR"]


def _momentum_keys(optimizer: OptimizerLike) -> tuple[bool, tuple[str, ...]]:
    """(use_beta1, keys the scheduler will write) for cycle_momentum=True."""
    defaults = getattr(optimizer, "defaults", {})
    if "momentum" not in defaults and "betas" not in defaults:
        raise ValueError("cycle_momentum=True needs an optimizer with momentum or betas (beta1) in its defaults")
    use_beta1 = "betas" in defaults
    return use_beta1, ("lr", "betas" if use_beta1 else "momentum")


class CyclicLR(LRScheduler):
    """Cyclical learning rate (Smith 2017) between ``base_lr`` and ``max_lr``.

    The cycle has ``step_size_up`` rising and ``step_size_down`` (default:
    the same) falling steps; ``mode`` scales the amplitude: 'triangular'
    (constant), 'triangular2' (halved each cycle) or 'exp_range'
    (``gamma**iteration``, and ``scale_mode`` is then forced to
    'iterations'); a custom ``scale_fn`` uses the given ``scale_mode``.
    Step it once per batch.

    Quirks: construction *overwrites* every group's lr with ``base_lr``. With
    ``cycle_momentum=True`` (the default) it also overwrites the momentum (or
    beta1) with ``max_momentum`` even if the optimizer was built with
    momentum 0, cycles it inversely to the lr, and adds 'max_momentum' and
    'base_momentum' keys to each group. There is no closed form:
    ``step(epoch)`` evaluates the cycle at ``epoch``.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        base_lr: float | list[float],
        max_lr: float | list[float],
        step_size_up: int = 2000,
        step_size_down: int | None = None,
        mode: Literal["triangular", "triangular2", "exp_range"] = "triangular",
        gamma: float = 1.0,
        scale_fn: Callable[[float], float] | None = None,
        scale_mode: Literal["cycle", "iterations"] = "cycle",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.8,
        max_momentum: float | list[float] = 0.9,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        driven: tuple[str, ...] = ("lr",)
        if cycle_momentum:
            _, driven = _momentum_keys(optimizer)
        _check_not_schedule(optimizer, driven)
        # Validate everything before touching the optimizer's groups.
        base_lrs = _format_param("base_lr", optimizer, base_lr)
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        _check_int("last_epoch", last_epoch, -1)
        _check_real("step_size_up", step_size_up, lambda v: v > 0, "> 0")
        if step_size_down is not None:
            _check_real("step_size_down", step_size_down, lambda v: v >= 0, ">= 0")
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError(
                f"mode must be 'triangular', 'triangular2' or 'exp_range' when scale_fn is None, got {mode!r}"
            )
        if scale_mode not in ("cycle", "iterations"):
            raise ValueError(f"scale_mode must be 'cycle' or 'iterations', got {scale_mode!r}")
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn must be callable, got {type(scale_fn).__name__}")
        if cycle_momentum:
            base_momentums = _format_param("base_momentum", optimizer, base_momentum)
            max_momentums = _format_param("max_momentum", optimizer, max_momentum)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups, strict=True):
                group["lr"] = lr
        self.max_lrs = max_lrs
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_fn()
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = "betas" in optimizer.defaults
            self.base_momentums = base_momentums
            self.max_momentums = max_momentums
            if last_epoch == -1:
                for m_max, m_base, group in zip(
                    self.max_momentums, self.base_momentums, optimizer.param_groups, strict=True
                ):
                    _set_momentum(group, self.use_beta1, m_max)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def _init_scale_fn(self) -> None:
        """Built-in modes fix scale_mode (exp_range counts iterations)."""
        if self._scale_fn_custom is not None:
            return
        if self.mode in ("triangular", "triangular2"):
            self.scale_mode = "cycle"
        elif self.mode == "exp_range":
            self.scale_mode = "iterations"

    def scale_fn(self, x: float) -> float:
        """The amplitude multiplier at cycle (or iteration) ``x``."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return float(1 / 2.0 ** (x - 1))
        return float(self.gamma**x)

    def get_lr(self) -> list[float]:
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        amp = self.scale_fn(cycle) if self.scale_mode == "cycle" else self.scale_fn(self.last_epoch)
        lrs = [base + (top - base) * scale_factor * amp for base, top in zip(self.base_lrs, self.max_lrs, strict=True)]
        if self.cycle_momentum:
            pairs = zip(self.base_momentums, self.max_momentums, self.optimizer.param_groups, strict=True)
            for m_base, m_max, group in pairs:
                _set_momentum(group, self.use_beta1, m_max - (m_max - m_base) * scale_factor * amp)
        return lrs

    def state_dict(self) -> dict[str, Any]:
        """A custom scale_fn is saved like torch's lambdas (None for functions)."""
        fn = self._scale_fn_custom
        self._scale_fn_custom = None
        try:
            state = super().state_dict()
        finally:
            self._scale_fn_custom = fn
        state["_scale_fn_custom"] = _encode_fn(fn)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        saved = state.pop("_scale_fn_custom", None)
        state.pop("_scale_fn_ref", None)
        fn = self._scale_fn_custom
        super().load_state_dict(state)
        self._scale_fn_custom = fn
        _restore_fn(fn, saved)
        self._init_scale_fn()


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: cosine annealing from initial_lr to ``eta_min`` over ``T_0``
    epochs, then restarts, each period ``T_mult`` times longer.

    lr = eta_min + (initial_lr - eta_min)(1 + cos(π·T_cur/T_i))/2. It keeps
    its own position (``T_cur``, ``T_i``) instead of a recursion. ``step()``
    advances by one; ``step(epoch)`` accepts a fractional epoch (e.g.
    ``epoch + i / iters_per_epoch``) and recomputes the position from it.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        T_0: int,
        T_mult: int = 1,
        eta_min: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.T_0 = _check_int("T_0", T_0, 1)
        self.T_i: float = self.T_0
        self.T_mult = _check_int("T_mult", T_mult, 1)
        _check_real("eta_min", eta_min, math.isfinite, "a finite number")
        self.eta_min = eta_min
        self.T_cur: float = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        lo = self.eta_min
        c = 1 + math.cos(math.pi * self.T_cur / self.T_i)
        return [lo + (base - lo) * c / 2 for base in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one epoch, or move to the (possibly fractional) ``epoch``."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"epoch must be >= 0, got {epoch!r}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult**n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult**n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._get_lr_called_within_step = True
        try:
            values = self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018): warm up from max_lr/div_factor
    to ``max_lr`` over ``pct_start`` of ``total_steps``, then anneal to
    initial_lr/final_div_factor; the momentum (or beta1) moves the opposite
    way between ``max_momentum`` and ``base_momentum``. Step it once per batch.

    Phases end at step pct_start·T - 1 and T - 1 (with ``three_phase``:
    pct_start·T - 1, 2·pct_start·T - 2 and T - 1, the last one annealing
    from initial_lr to the minimum with momentum held at max).

    Quirks: construction *unconditionally* sets ``group['initial_lr']`` to
    max_lr/div_factor and adds 'max_lr', 'min_lr' (and with cycle_momentum
    'max_momentum', 'base_momentum') to each group, overwriting the momentum
    with max_momentum. Stepping to ``last_epoch == total_steps`` is allowed and
    the lr *bounces back up* (the anneal fraction passes 1; torch issue
    91765); one more step raises ValueError. So with T total steps call
    ``step()`` at most T - 1 times after construction. ``pct_start·total_steps
    == 1`` makes torch divide by zero at construction; fusedopt raises
    ValueError instead.
    """

    def __init__(
        self,
        optimizer: OptimizerLike,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if total_steps is not None:
            self.total_steps = _check_int("total_steps", total_steps, 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = _check_int("epochs", epochs, 1) * _check_int("steps_per_epoch", steps_per_epoch, 1)
        else:
            raise ValueError("total_steps must be given, or both epochs and steps_per_epoch")
        _check_real("pct_start", pct_start, lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        if float(pct_start * self.total_steps) == 1.0:
            raise ValueError(
                f"pct_start * total_steps must not be 1 (the warm-up phase would have zero length), "
                f"got pct_start={pct_start!r}, total_steps={self.total_steps}"
            )
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        _check_real("div_factor", div_factor, lambda v: v > 0, "> 0")
        _check_real("final_div_factor", final_div_factor, lambda v: v > 0, "> 0")
        T = self.total_steps
        end1 = float(pct_start * T) - 1
        if three_phase:
            self._schedule_phases = [
                _phase(end1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(float(2 * pct_start * T) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                _phase(T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._schedule_phases = [
                _phase(end1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                _phase(T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        self._anneal_func_type = anneal_strategy
        self.cycle_momentum = cycle_momentum
        driven: tuple[str, ...] = ("lr",)
        if cycle_momentum:
            self.use_beta1, driven = _momentum_keys(optimizer)
        _check_not_schedule(optimizer, driven)
        _check_int("last_epoch", last_epoch, -1)
        max_lrs = _format_param("max_lr", optimizer, max_lr)
        if cycle_momentum:
            max_ms = _format_param("max_momentum", optimizer, max_momentum)
            base_ms = _format_param("base_momentum", optimizer, base_momentum)
        if last_epoch == -1:
            for top, group in zip(max_lrs, optimizer.param_groups, strict=True):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if cycle_momentum:
                for m_max, m_base, group in zip(max_ms, base_ms, optimizer.param_groups, strict=True):
                    _set_momentum(group, self.use_beta1, m_max)
                    group["max_momentum"] = m_max
                    group["base_momentum"] = m_base
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps is {self.total_steps}")
        lrs = []
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or i == last:
                    pct = (step - start) / (end - start)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        m = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                    break
                start = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                _set_momentum(group, self.use_beta1, m)
        return lrs


def _phase(end_step: float, start_lr: str, end_lr: str, start_m: str, end_m: str) -> dict[str, Any]:
    """One OneCycleLR phase, in torch's state_dict layout."""
    return {
        "end_step": end_step,
        "start_lr": start_lr,
        "end_lr": end_lr,
        "start_momentum": start_m,
        "end_momentum": end_m,
    }
