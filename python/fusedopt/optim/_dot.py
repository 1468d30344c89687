"""LBFGS's dot products, with the same bits on every CPU.

NumPy's ``dot`` is the BLAS's, whose order of operations is the CPU's (OpenBLAS fuses the
float64 dot of two elements on AVX-512 Intel CPUs, not on Zen 3), so LBFGS runs through it took
different paths on different machines. These follow one fixed order (kernels/lane_dot.hpp):
natively, or in NumPy for ``backend="numpy"`` (reference.lane_dot), with the same bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core, reference

Dot = Callable[[np.ndarray, np.ndarray], Any]  # x . y as a NumPy scalar of their dtype


def _native_dot(x: np.ndarray, y: np.ndarray) -> Any:
    return x.dtype.type(_core.lane_dot(x, y))


def dot_for(backend: str) -> Dot:
    """The dot product of `backend` ("native" or "numpy")."""
    return reference.lane_dot if backend == "numpy" else _native_dot
