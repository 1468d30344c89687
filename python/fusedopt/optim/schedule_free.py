"""Schedule-Free SGD and AdamW (Defazio et al. 2024, "The Road Less Scheduled"), as the
schedulefree package's SGDScheduleFree and AdamWScheduleFree compute them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Unpack

from .. import _core
from ._types import Betas, as_betas, GradsLike, Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class _ScheduleFree(Optimizer):
    """train()/eval() and the mode check the two share. The parameters hold y (where the
    gradient is evaluated) in train mode and x (the average, to evaluate or save) in eval
    mode; z is the state array 'z'. Switching is one native pass over every array
    (``_core.blend_``): train ``p = lerp(p, z, 1 - beta1)``, eval ``p = lerp(p, z, 1 - 1/beta1)``,
    for the parameters that have a z (taken a step), group by group as schedulefree does."""

    def _beta1(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    def _on_group_added(self, group: dict[str, Any]) -> None:
        group.setdefault("train_mode", True)

    def step(self, grads: GradsLike) -> None:
        """One step (in train mode: RuntimeError in eval mode, nothing changed)."""
        for i, g in enumerate(self.param_groups):
            if not g.get("train_mode", True):
                raise RuntimeError(f"param group {i} is in eval mode (its parameters hold x): call train() before step()")
        self._engine.step(grads)

    def train(self) -> None:
        """Parameters to y, for steps (a no-op for groups already in train mode)."""
        self._swap(True)

    def eval(self) -> None:
        """Parameters to x, the averaged iterate, for evaluation and checkpoints (a no-op for
        groups already in eval mode)."""
        self._swap(False)

    def _swap(self, to_train: bool) -> None:
        state, keys, _, _ = self._engine.snapshot(copy_arrays=False)
        ps, zs, ws, groups = [], [], [], []
        at = 0
        for g in self.param_groups:
            n = len(g["params"])
            if bool(g.get("train_mode", True)) != to_train:
                beta1 = self._beta1(g)
                w = 1.0 - beta1 if to_train else 1.0 - 1.0 / beta1
                for key, p in zip(keys[at : at + n], g["params"]):
                    z = state.get(key, {}).get("z")
                    if z is not None:
                        ps.append(p)
                        zs.append(z)
                        ws.append(w)
                groups.append(g)
            at += n
        _core.blend_(ps, zs, ws, "lerp", names=("params", "z"))
        for g in groups:
            g["train_mode"] = to_train


def _number(value: Any, name: str) -> float:
    if callable(value) or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: train() and eval() need a number, got {type(value).__name__}")
    return float(value)


class SGDScheduleFree(_ScheduleFree):
    """Schedule-Free SGD, as ``schedulefree.SGDScheduleFree`` (1.4) computes it::

        lr_k     = lr * min(1, (k+1)/warmup_steps)            (k: steps taken)
        lr_max   = max(lr_max, lr_k);  weight = (k+1)^r * lr_max^weight_lr_power
        ckp1     = weight / (weight_sum += weight)
        d        = g + weight_decay * y
        y        = lerp(y, z, ckp1) + d * lr_k * (momentum*(1 - ckp1) - 1)
        z        = z - lr_k * d                                 (z starts as the parameter)

    No learning-rate schedule is needed (``warmup_steps`` gives a linear warmup). The
    parameters hold y while training; call :meth:`eval` before evaluating or saving (they then
    hold x, the average) and :meth:`train` before stepping again. Unlike schedulefree, an
    optimizer starts in train mode (before the first step x = y = z, so the first train() is a
    no-op there too); ``step`` in eval mode raises RuntimeError. ``group['train_mode']`` holds
    the mode (saved in ``state_dict``). k, lr_max and weight_sum are kept per parameter
    (``state[key]['step']``, ``['lr_max']``, ``['weight_sum']``), where schedulefree keeps them
    per group: they agree while every parameter gets a gradient at every step; a parameter
    whose gradient is None does not advance them (schedulefree's group counters advance).
    schedulefree's ``scheduled_lr`` group entry (for logging) is not written.
    """

    rule = "sgd_schedule_free"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1.0,
        momentum: Hyper = 0.9,
        weight_decay: Hyper = 0.0,
        warmup_steps: Hyper = 0,
        r: Hyper = 0.0,
        weight_lr_power: Hyper = 2.0,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                        weight_lr_power=weight_lr_power, train_mode=True)
        super().__init__(params, defaults, **options)

    def _beta1(self, group: dict[str, Any]) -> float:
        return _number(group["momentum"], "momentum")


class AdamWScheduleFree(_ScheduleFree):
    """Schedule-Free AdamW, as ``schedulefree.AdamWScheduleFree`` (1.4) computes it: the
    weights and y/z update of :class:`SGDScheduleFree` (beta1 in place of momentum) on the
    Adam-normalized gradient::

        v = beta2*v + (1 - beta2)*g*g
        d = g / (sqrt(v / (1 - beta2^(k+1))) + eps) + weight_decay * y

    No first moment is kept: the y/z interpolation is the momentum. State: 'z', 'exp_avg_sq'
    and the counters. train()/eval() and the differences from schedulefree as for
    :class:`SGDScheduleFree`.
    """

    rule = "adamw_schedule_free"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 0.0025,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        warmup_steps: Hyper = 0,
        r: Hyper = 0.0,
        weight_lr_power: Hyper = 2.0,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, betas=as_betas(betas), eps=eps,
                        weight_decay=weight_decay, warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                        train_mode=True)
        super().__init__(params, defaults, **options)

    def _beta1(self, group: dict[str, Any]) -> float:
        return _number(group["betas"][0], "betas[0]")
