"""Checks of the scalar arguments the Python layer takes itself (optimizer options, clipping,
FlatParams). Each raises TypeError for a wrong type and ValueError for a wrong value, naming the
argument, and never OverflowError. A rule's own hyperparameters are checked natively, as its
header declares them; arrays by ``_core.check_array``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def real(value: Any, name: str) -> float:
    """A real number (bool, complex, str refused) as a float; an int too large for one is a ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{name}: {value!r:.80} is too large for a float64") from None


def float_or_nan(value: Any) -> float:
    """float(value) for a number already known to be real; NaN (refused by every range check)
    for an int too large for a float64, where float() raises OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return math.nan


def nonnegative(value: Any, name: str) -> float:
    """A real number >= 0 (NaN refused)."""
    v = real(value, name)
    if not v >= 0.0:
        raise ValueError(f"{name}: must be >= 0, got {value!r:.80}")
    return v


def flag(value: Any, name: str) -> bool:
    """True or False (a numpy.bool_ too), never an arbitrary truthy object."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def seed(value: Any, name: str) -> int:
    """A random seed: an int (a NumPy integer too) in [0, 2**64)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
    if not 0 <= int(value) < 2**64:
        raise ValueError(f"{name}: must be in [0, 2**64), got {int(value)}")
    return int(value)


def choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    """One of the strings in `allowed`."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {tuple(allowed)}, got {type(value).__name__}")
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r:.80}")
    return value
