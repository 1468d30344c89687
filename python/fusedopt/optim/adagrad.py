"""Adagrad (torch.optim.Adagrad)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .. import compressed_state
from .optimizer import Optimizer, _pool_state, state_dtype


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
        lr: Hyper = 1e-2,
        lr_decay: Hyper = 0.0,
        weight_decay: Hyper = 0.0,
        initial_accumulator_value: Hyper = 0.0,
        eps: Hyper = 1e-10,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
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

    def _on_group_added(self, group: dict[str, Any]) -> None:
        value = self.defaults["initial_accumulator_value"]
        signed = False  # (the sum of squares)
        state = {}
        for key, p in zip(self._group_keys(group), group["params"]):
            initial = np.full_like(p, value, dtype=np.float32 if self.state_dtype else state_dtype(p))
            state[key] = {"step": 0, **compressed_state.encode_like(p, initial, "sum", self.state_dtype, signed)}
        params = dict(zip(state, group["params"]))
        _pool_state(state, {key: (0, i, params[key]) for i, key in enumerate(state)})  # as a step creates state
        for key, st in state.items():
            self._engine.set_param_state(key, st)
