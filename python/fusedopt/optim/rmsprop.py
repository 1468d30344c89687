"""RMSprop (torch.optim.RMSprop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """RMSprop as torch.optim.RMSprop computes it::

        g = -g if maximize;  g += weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        centered:  gavg = lerp(gavg, g, 1 - alpha);  avg = sqrt(v - gavg^2) + eps
        else:      avg = sqrt(v) + eps                     # eps outside the sqrt
        momentum:  buf = momentum * buf + g / avg;  p -= lr * buf    (buf starts at zero)
        else:      p -= lr * g / avg

    Differs from Keras/TF (and Hinton's lecture notes): eps outside the sqrt, alpha (rho)
    defaults to 0.99 rather than 0.9, and lr to 1e-2.
    """

    rule = "rmsprop"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-2,
        alpha: Hyper = 0.99,
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        momentum: Hyper = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)
