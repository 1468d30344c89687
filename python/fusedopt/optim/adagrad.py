"""Adagrad (torch.optim.Adagrad)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._hyper import check_common
from ._params import ParamsLike
from .optimizer import Optimizer, State


class Adagrad(Optimizer):
    """Adagrad as torch.optim.Adagrad computes it::

        g = -g if maximize;  g += weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        sum += g * g
        p -= clr * g / (sqrt(sum) + eps)          # eps outside the sqrt

    State exists from construction (``sum`` filled with ``initial_accumulator_value``), as in
    torch; like torch, a per-group ``initial_accumulator_value`` is ignored: the constructor's
    value is used. Keras/TF put eps inside the sqrt and start the accumulator at 0.1.
    """

    rule = "adagrad"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Any = 1e-2,
        lr_decay: Any = 0.0,
        weight_decay: Any = 0.0,
        initial_accumulator_value: Any = 0.0,
        eps: Any = 1e-10,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        check_common(hp, where, ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"))

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        return ["sum"]

    def _init_state(self, p: np.ndarray, hp: Mapping[str, Any]) -> State:
        return {"step": 0, "sum": np.full_like(p, self.defaults["initial_accumulator_value"])}

    def _on_group_added(self, group: dict[str, Any]) -> None:
        start = len(self._keys) - len(group["params"])
        for key, p in zip(self._keys[start:], group["params"]):
            self._state[key] = self._init_state(p, group)

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        t = float(st["step"] + 1)
        return {
            "clr": float(hp["lr"]) / (1 + (t - 1) * float(hp["lr_decay"])),
            "weight_decay": float(hp["weight_decay"]),
            "eps": float(hp["eps"]),
        }
