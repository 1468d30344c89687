"""Adam and AdamW (torch.optim.Adam / torch.optim.AdamW)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._hyper import check_common, decoupled_decay
from ._params import ParamsLike
from .optimizer import Optimizer, State


class Adam(Optimizer):
    """Adam as torch.optim.Adam computes it (order of operations included)::

        g = -g if maximize
        decoupled: p *= 1 - lr*weight_decay    else: g += weight_decay * p
        m = lerp(m, g, 1 - beta1);  v = beta2*v + (1 - beta2)*g*g
        amsgrad: vmax = max(vmax, v) and v = vmax          (max over the raw second moment)
        p -= lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)   # eps outside the sqrt

    The step count t is an exact integer (torch's float32 counter stops at 2^24).
    """

    rule = "adam"
    _decoupled_default = False

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Any = 1e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: Any = 1e-8,
        weight_decay: Any = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool | None = None,
        **options: Any,
    ) -> None:
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled_default
        defaults = dict(
            lr=lr,
            betas=tuple(betas) if isinstance(betas, list) else betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults, **options)

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        check_common(hp, where, ("lr", "eps", "weight_decay"))

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if hp["amsgrad"] else None]

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        t = float(st["step"] + 1)
        beta1, beta2 = (float(b) for b in hp["betas"])
        decoupled = bool(hp["decoupled_weight_decay"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "eps": float(hp["eps"]),
            "weight_decay": float(hp["weight_decay"]),
            "step_size": float(hp["lr"]) / (1 - beta1**t),
            "bc2_sqrt": (1 - beta2**t) ** 0.5,
            "decay": decoupled_decay(hp, decoupled),
            "amsgrad": bool(hp["amsgrad"]),
            "decoupled": decoupled,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
    ``p *= 1 - lr*weight_decay`` before the Adam update; weight_decay defaults to 1e-2."""

    _decoupled_default = True

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Any = 1e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: Any = 1e-8,
        weight_decay: Any = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True, **options
        )
