"""Adadelta (torch.optim.Adadelta)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) as torch.optim.Adadelta computes it::

        g = -g if maximize;  g += weight_decay * p
        square_avg = rho * square_avg + (1 - rho) * g * g
        delta = sqrt(acc_delta + eps) / sqrt(square_avg + eps) * g   # eps inside both sqrts
        acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        p -= lr * delta

    The paper has no learning rate (torch's default lr=1.0 is the paper's update); rho may be
    1, as in torch. Keras uses the same update with other defaults (lr=1e-3, rho=0.95,
    eps=1e-7).
    """

    rule = "adadelta"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1.0,
        rho: Hyper = 0.9,
        eps: Hyper = 1e-6,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)
