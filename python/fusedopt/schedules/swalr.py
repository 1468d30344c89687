"""SWALR: torch.optim.swa_utils.SWALR (torch 2.13), the learning rate of the averaging phase of
Stochastic Weight Averaging (see :class:`fusedopt.AveragedModel`)."""

from __future__ import annotations

import math
from typing import Any

from .functions import _int as _check_int
from .lr_scheduler import LRScheduler, OptimizerLike, _format_param

__all__ = ["SWALR"]

_STRATEGIES = ("cos", "linear")


class SWALR(LRScheduler):
    """Anneal each group's lr to ``swa_lr`` over ``anneal_epochs`` epochs, then hold it.

    torch 2.13's arithmetic: at the epoch-``t`` step with alpha = anneal(t / anneal_epochs)
    (cos: (1 - cos(pi*x))/2; linear: x; x clamped to [0, 1]), the lr is
    ``swa_lr*alpha + lr0*(1 - alpha)``, where lr0 is recovered from the group's current lr and
    the previous alpha (``(lr - prev_alpha*swa_lr)/(1 - prev_alpha)``, or ``swa_lr`` once
    prev_alpha is 1). So the schedule starts from whatever lr the groups hold when it is built
    (typically where another scheduler left it), and an lr changed from outside in the
    annealing phase moves the rest of it. ``swa_lr`` may be one number or one per group; it is
    stored in each group as ``group['swa_lr']``. ``anneal_epochs=0`` jumps to swa_lr at once.
    """

    _not_saved = ("optimizer", "anneal_func")

    def __init__(
        self,
        optimizer: OptimizerLike,
        swa_lr: float | list[float],
        anneal_epochs: int = 10,
        anneal_strategy: str = "cos",
        last_epoch: int = -1,
    ) -> None:
        swa_lrs = _format_param("swa_lr", optimizer, swa_lr)
        if anneal_strategy not in _STRATEGIES:
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy!r:.80}")
        self.anneal_epochs = _check_int("anneal_epochs", anneal_epochs, 0)
        for value, group in zip(swa_lrs, optimizer.param_groups, strict=True):
            group["swa_lr"] = value
        self._set_anneal_func(anneal_strategy)
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def _set_anneal_func(self, anneal_strategy: str) -> None:
        self._anneal_strategy = anneal_strategy
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal

    def get_lr(self) -> list[float]:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        groups = self.optimizer.param_groups
        prev_lrs = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(groups, prev_lrs, strict=True)]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (a torch SWALR's loads too)."""
        super().load_state_dict(state_dict)
        self._set_anneal_func(self._anneal_strategy)
