"""SGD with momentum, dampening, Nesterov and coupled weight decay (torch.optim.SGD), plus the
classic formulation of the papers and course material, where the learning rate lives inside
the velocity."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer

class SGD(Optimizer):
    """Stochastic gradient descent, exactly as torch.optim.SGD computes it.

    ``formulation="torch"`` (default)::

        g = -g if maximize;  g += weight_decay * p
        buf = g (first step: a copy, no dampening)  else  buf = momentum*buf + (1-dampening)*g
        g = g + momentum*buf if nesterov else buf
        p -= lr * g

    ``formulation="classic"`` (Sutskever et al. 2013, and most course material)::

        v = momentum*v - lr*g;  p += v                     (buffer starts at zero)
        nesterov:  p += -momentum*v_prev + (1+momentum)*v

    The two agree while lr is constant (up to rounding) and differ once a schedule changes it:
    torch applies the new lr to the whole buffer, classic only to new gradients.
    """

    rule = "sgd"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        momentum: Hyper = 0.0,
        dampening: Hyper = 0.0,
        weight_decay: Hyper = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        formulation: str = "torch",
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            formulation=formulation,
        )
        super().__init__(params, defaults, **options)

class SGDMomentum(SGD):
    """The course-material interface: ``SGDMomentum(learning_rate, momentum).update(params, grads)``.

    The classic formulation (``v = momentum*v - learning_rate*g; p += v``); params may also be
    given up front like any optimizer.
    """

    def __init__(
        self,
        learning_rate: Hyper = 0.01,
        momentum: Hyper = 0.9,
        nesterov: bool = False,
        params: ParamsLike | None = None,
        **options: Unpack[StepOptions],
    ) -> None:
        super().__init__(params, lr=learning_rate, momentum=momentum, nesterov=nesterov, formulation="classic", **options)

    @property
    def learning_rate(self) -> Any:
        return (self.param_groups[0] if self.param_groups else self.defaults)["lr"]

    @learning_rate.setter
    def learning_rate(self, value: Any) -> None:
        self.defaults["lr"] = value
        for g in self.param_groups:
            g["lr"] = value

    @property
    def momentum(self) -> Any:
        return (self.param_groups[0] if self.param_groups else self.defaults)["momentum"]
