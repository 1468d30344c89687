"""ASGD (torch.optim.ASGD)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class ASGD(Optimizer):
    """Averaged SGD (Polyak & Juditsky 1992) as torch.optim.ASGD computes it::

        g = -g if maximize;  g += weight_decay * p
        p = p * (1 - lambd * eta) - eta * g
        ax = ax + (p - ax) * mu   if mu != 1,   else  ax = p
        eta = lr / (1 + lambd * lr * t)^alpha;   mu = 1 / max(1, t - t0)      (t: the step count)

    ``ax``, the running average of the parameters from step t0 on, is the model to evaluate;
    the parameters themselves follow plain SGD with a decaying step size. ``eta`` and ``mu``
    are per-parameter state (Python floats), as in torch: computed in float64 at the end of each
    step from that step's hyperparameters and rounded to float32 (torch keeps them as float32
    tensors), starting at eta = lr, mu = 1. lambd, alpha and t0 must be >= 0.
    """

    rule = "asgd"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-2,
        lambd: Hyper = 1e-4,
        alpha: Hyper = 0.75,
        t0: Hyper = 1e6,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)
