"""Adamax, NAdam and RAdam (torch.optim 2.13's definitions)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._hyper import check_common, decoupled_decay
from ._params import ParamsLike
from .optimizer import Optimizer, State


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
        lr: Any = 2e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: Any = 1e-8,
        weight_decay: Any = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        check_common(hp, where, ("lr", "eps", "weight_decay"))

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        return ["exp_avg", "exp_inf"]

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        t = float(st["step"] + 1)
        beta1, beta2 = (float(b) for b in hp["betas"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "eps": float(hp["eps"]),
            "weight_decay": float(hp["weight_decay"]),
            "clr": float(hp["lr"]) / (1 - beta1**t),
        }


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
    _advance_only_scalars = frozenset({"mu_product"})

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Any = 2e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: Any = 1e-8,
        weight_decay: Any = 0.0,
        momentum_decay: Any = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        check_common(hp, where, ("lr", "eps", "weight_decay", "momentum_decay"))

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        return ["exp_avg", "exp_avg_sq"]

    def _init_state(self, p: np.ndarray, hp: Mapping[str, Any]) -> State:
        st = super()._init_state(p, hp)
        st["mu_product"] = 1.0
        return st

    def _bucket(self, st: State, new: bool) -> Any:
        return (st["step"], st["mu_product"])

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        t = float(st["step"] + 1)
        beta1, beta2 = (float(b) for b in hp["betas"])
        lr, psi = float(hp["lr"]), float(hp["momentum_decay"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = float(np.float32(st["mu_product"]) * np.float32(mu))
        decoupled = bool(hp["decoupled_weight_decay"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "eps": float(hp["eps"]),
            "weight_decay": float(hp["weight_decay"]),
            "bc2": 1 - beta2**t,
            "grad_coef": -lr * (1.0 - mu) / (1.0 - mu_product),
            "avg_coef": (-lr * mu_next) / (1.0 - mu_product * mu_next),
            "decay": decoupled_decay(hp, decoupled),
            "decoupled": decoupled,
            "mu_product": mu_product,
        }

    def _advance(self, st: State, scalars: Mapping[str, Any]) -> None:
        super()._advance(st, scalars)
        st["mu_product"] = scalars["mu_product"]


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
        lr: Any = 1e-3,
        betas: tuple[Any, Any] = (0.9, 0.999),
        eps: Any = 1e-8,
        weight_decay: Any = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps, weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def _check_hyperparameters(self, hp: Mapping[str, Any], where: str) -> None:
        check_common(hp, where, ("lr", "eps", "weight_decay"))

    def _state_slots(self, hp: Mapping[str, Any]) -> list[str | None]:
        return ["exp_avg", "exp_avg_sq"]

    def _scalars(self, hp: Mapping[str, Any], st: State, new: bool) -> dict[str, Any]:
        t = float(st["step"] + 1)
        beta1, beta2 = (float(b) for b in hp["betas"])
        bc1, bc2 = 1 - beta1**t, 1 - beta2**t
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * (beta2**t) / bc2
        rectified = rho_t > 5.0
        rect = (
            ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            if rectified
            else math.nan
        )
        decoupled = bool(hp["decoupled_weight_decay"])
        return {
            "beta1": beta1,
            "beta2": beta2,
            "eps": float(hp["eps"]),
            "weight_decay": float(hp["weight_decay"]),
            "lr": float(hp["lr"]),
            "bc1": bc1,
            "bc2_sqrt": bc2**0.5,
            "rect": rect,
            "decay": decoupled_decay(hp, decoupled),
            "rectified": rectified,
            "decoupled": decoupled,
        }
