"""Hyperparameter checks (torch.optim's ValueError rules) and helpers shared by the optimizers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def check_nonnegative(value: Any, name: str, where: str) -> float:
    """A float >= 0 (NaN rejected), or ValueError naming the hyperparameter and its group."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name}{where}: expected a number, got {type(value).__name__}")
    v = float(value)
    if not v >= 0.0:
        raise ValueError(f"{name}{where}: must be >= 0, got {value!r}")
    return v


def check_unit_interval(value: Any, name: str, where: str) -> float:
    """A float in [0, 1): betas, alpha and similar decay rates."""
    v = check_nonnegative(value, name, where)
    if not v < 1.0:
        raise ValueError(f"{name}{where}: must be in [0, 1), got {value!r}")
    return v


def check_common(hp: Mapping[str, Any], where: str, names: tuple[str, ...]) -> None:
    """Every named hyperparameter >= 0, and 'betas' (if present) a pair in [0, 1)."""
    for name in names:
        check_nonnegative(hp[name], name, where)
    if "betas" in hp:
        betas = hp["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas{where}: expected a pair (beta1, beta2), got {betas!r}")
        check_unit_interval(betas[0], "betas[0]", where)
        check_unit_interval(betas[1], "betas[1]", where)


def decoupled_decay(hp: Mapping[str, Any], decoupled: bool) -> float:
    """The factor p is multiplied by before a decoupled update: 1 - lr*weight_decay, in float64."""
    return 1.0 - float(hp["lr"]) * float(hp["weight_decay"]) if decoupled else 1.0
