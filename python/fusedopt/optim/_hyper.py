"""The check of the optimizer-wide numeric options (max_grad_norm, clip_value); a rule's own
hyperparameters are checked natively, as its header declares them."""

from __future__ import annotations

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
