"""Gradients given in the params' structure, matched to the params, for the optimizers that
step in Python around native calls (LBFGS, Muon). The engine does the same for the others."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def scalar_as_array(g: Any, p: np.ndarray) -> Any:
    """A NumPy scalar given for a 0-d parameter (what np.sum returns) as a 0-d array; anything
    else as it is (the engine's step does the same natively)."""
    return np.asarray(g) if isinstance(g, np.generic) and p.ndim == 0 else g


def align_grads(grads: Any, params: Sequence[np.ndarray], names: Sequence[str] | None,
                where: str = "grads") -> list[np.ndarray | None]:
    """One gradient (or None) per parameter, checked: a numpy.ndarray of the parameter's dtype
    and shape (for a 0-d parameter also a NumPy scalar, as np.sum returns). A list in the
    params' order, a dict by name (a missing name is None), or one array for a single parameter."""
    if isinstance(grads, np.ndarray) and len(params) == 1:
        items: list[Any] = [grads]
    elif isinstance(grads, Mapping):
        if names is None:
            raise TypeError(f"{where}: gradients by name, but the params were not given by name")
        extra = set(grads) - set(names)
        if extra:
            raise ValueError(f"{where}: gradients for unknown parameters {sorted(map(str, extra))}")
        items = [grads.get(n) for n in names]
    elif isinstance(grads, Sequence) and not isinstance(grads, (str, bytes)):
        if len(grads) != len(params):
            raise ValueError(f"{where}: {len(grads)} gradients for {len(params)} parameters")
        items = list(grads)
    else:
        raise TypeError(f"{where}: gradients must have the params' structure, got {type(grads).__name__}")
    for i, (p, g) in enumerate(zip(params, items)):
        if g is None:
            continue
        label = repr(names[i]) if names else i
        g = items[i] = scalar_as_array(g, p)
        if not isinstance(g, np.ndarray) or isinstance(g, np.ma.MaskedArray):
            raise TypeError(f"{where}: gradient for parameter {label} is {type(g).__name__}, not a numpy.ndarray")
        if g.dtype != p.dtype:
            raise TypeError(f"{where}: gradient for parameter {label} has dtype {g.dtype}, the parameter {p.dtype}")
        if g.shape != p.shape:
            raise ValueError(f"{where}: gradient for parameter {label} has shape {g.shape}, the parameter {p.shape}")
    return items
