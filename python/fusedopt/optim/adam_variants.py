"""Adamax, NAdam and RAdam (torch.optim 2.13's definitions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Betas, as_betas, Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Adamax(Optimizer):
    """Adamax (the infinity-norm Adam) as torch.optim.Adamax::

        g = -g if maximize;  g += weight_decay * p
        m = lerp(m, g, 1 - beta1);  u = max(beta2*u, |g| + eps)     # eps inside the max
        p -= lr/(1 - beta1^t) * m / u
    """

    rule = "adamax"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 2e-3,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, betas=as_betas(betas), eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)

class NAdam(Optimizer):
    """NAdam (Dozat 2016) as torch.optim.NAdam, with its momentum schedule::

        mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay));  mu_product *= mu_t
        m = lerp(m, g, 1 - beta1);  v = beta2*v + (1 - beta2)*g*g
        denom = sqrt(v / (1 - beta2^t)) + eps
        p -= lr*(1 - mu_t)/(1 - mu_product) * g/denom
        p -= lr*mu_{t+1}/(1 - mu_product*mu_{t+1}) * m/denom

    ``mu_product`` is kept rounded to float32 after every step, as torch's float32 tensor is,
    so long runs agree with torch rather than drift from it.
    """

    rule = "nadam"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 2e-3,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        momentum_decay: Hyper = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(
            lr=lr, betas=as_betas(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )
        super().__init__(params, defaults, **options)

class RAdam(Optimizer):
    """RAdam (Liu et al. 2020) as torch.optim.RAdam::

        m = lerp(m, g, 1 - beta1);  v = beta2*v + (1 - beta2)*g*g;  m_hat = m/(1 - beta1^t)
        rho_inf = 2/(1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        rho_t > 5:  p -= m_hat * lr * sqrt(1 - beta2^t)/(sqrt(v) + eps) * r_t
        else:       p -= m_hat * lr                          (plain momentum SGD warm-up)
    """

    rule = "radam"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(
            lr=lr, betas=as_betas(betas), eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )
        super().__init__(params, defaults, **options)
