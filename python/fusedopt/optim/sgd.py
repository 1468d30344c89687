"""SGD with momentum, dampening, Nesterov and coupled weight decay (torch.optim.SGD), plus the
classic formulation of the papers and course material, where the learning rate lives inside
the velocity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._params import ParamsLike
from ._hyper import check_nonnegative
from .optimizer import Optimizer, State

_FORMULATIONS = ("torch", "classic")


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
    has_step = False

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Any = 1e-3,
        momentum: Any = 0.0,
        dampening: Any = 0.0,
        weight_decay: Any = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        formulation: str = "torch",
        **options: Any,
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

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            check_nonnegative(hp[name], name, where)
        if hp["formulation"] not in _FORMULATIONS:
            raise ValueError(f"formulation{where}: must be one of {_FORMULATIONS}, got {hp['formulation']!r}")
        if hp["nesterov"] and (hp["momentum"] <= 0 or hp["dampening"] != 0):
            raise ValueError(f"nesterov{where}: requires momentum > 0 and dampening == 0")
        if hp["formulation"] == "classic" and hp["dampening"] != 0:
            raise ValueError(f"dampening{where}: the classic formulation has no dampening")

    def _uses_buffer(self, hp: Mapping[str, Any]) -> bool:
        return hp["momentum"] != 0 or hp["formulation"] == "classic"

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        return ["momentum_buffer" if self._uses_buffer(hp) else None]

    def _init_state(self, p: np.ndarray, hp: Mapping[str, Any]) -> State:
        if not self._uses_buffer(hp):
            return {}
        # torch copies the first gradient into the buffer (the kernel writes all of it);
        # the classic velocity starts at zero.
        classic = hp["formulation"] == "classic"
        return {"momentum_buffer": np.zeros_like(p) if classic else np.empty_like(p)}

    def _bucket(self, st: State, new: bool) -> Any:
        return new

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        classic = hp["formulation"] == "classic"
        return {
            "lr": float(hp["lr"]),
            "momentum": float(hp["momentum"]),
            "dampening": float(hp["dampening"]),
            "weight_decay": float(hp["weight_decay"]),
            "nesterov": bool(hp["nesterov"]),
            "first_step": bool(new and not classic),
            "classic": classic,
        }


class SGDMomentum(SGD):
    """The course-material interface: ``SGDMomentum(learning_rate, momentum).update(params, grads)``.

    The classic formulation (``v = momentum*v - learning_rate*g; p += v``); params may also be
    given up front like any optimizer.
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        momentum: Any = 0.9,
        nesterov: bool = False,
        params: ParamsLike | None = None,
        **options: Any,
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
