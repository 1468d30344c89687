"""A flat arena: a model's parameters, gradients and optimizer state as views into contiguous
buffers, so a step over hundreds of layers is one loop over one range."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_ALIGN_BYTES = 64  # each view starts on its own cache line


def _aligned_zeros(n: int, dtype: np.dtype) -> np.ndarray:
    itemsize = dtype.itemsize
    raw = np.zeros(n + _ALIGN_BYTES // itemsize, dtype=dtype)
    shift = (-raw.ctypes.data % _ALIGN_BYTES) // itemsize
    return raw[shift : shift + n]


def _float_dtype(dtype: Any) -> np.dtype[Any]:
    """A parameter dtype: float32, float64, float16 or bfloat16 (ml_dtypes'; also by its name)."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes  # (registers the name with NumPy)
    try:
        dt: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: not a NumPy dtype: {dtype!r}") from None
    if dt not in (np.float32, np.float64, np.float16) and dt.name != "bfloat16":
        raise TypeError(f"dtype: must be float32, float64, float16 or bfloat16, got {dt}")
    return dt


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    """An int or a sequence of ints (bool refused), each >= 0, with a size NumPy can allocate."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not isinstance(dims, Sequence) or isinstance(dims, str):
        raise TypeError(f"{where}: expected an int or a sequence of ints, got {type(shape).__name__}")
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{where}: dimensions must be ints, got {d!r} in {shape!r}")
        if d < 0:
            raise ValueError(f"{where}: negative dimension in {shape!r}")
    if math.prod(int(d) for d in dims) >= 2**62:
        raise ValueError(f"{where}: {shape!r} has too many elements")
    return tuple(int(d) for d in dims)


class FlatParams:
    """Named parameter and gradient arrays carved out of two contiguous buffers.

    Build the model through it, initialise the views in place, and give the optimizer the
    flat buffers::

        arena = FlatParams({"W1": (64, 128), "b1": (128,), "W2": (128, 10), "b2": (10,)})
        fusedopt.init.kaiming_uniform(arena.params["W1"], rng=rng)
        opt = fusedopt.Adam([arena.flat_params], lr=1e-3)
        ...                                   # backward writes into arena.grads["W1"], ...
        opt.step([arena.flat_grads])          # one loop over every layer

    Views start on 64-byte boundaries; the few padding elements between them have zero
    gradients. ``dtype``: float32 (default), float64, float16 or bfloat16 (``"bfloat16"`` or
    ``ml_dtypes.bfloat16``; with ``master_weights=True`` the optimizer keeps float32 copies).
    Options that differ per layer (no weight decay on biases) need one arena per
    param group. A pickled or deep-copied arena's views are views of its new buffers (pickle it
    together with its optimizer, and the optimizer's parameter is the new flat buffer).
    """

    def __init__(self, shapes: Mapping[str, Sequence[int] | int], dtype: type | np.dtype = np.float32) -> None:
        dt = _float_dtype(dtype)
        if not isinstance(shapes, Mapping):
            raise TypeError(f"shapes: expected a dict of name -> shape, got {type(shapes).__name__}")
        if not shapes:
            raise ValueError("shapes: expected a non-empty dict of name -> shape")
        per_line = _ALIGN_BYTES // dt.itemsize
        layout: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for name, shape in shapes.items():
            if not isinstance(name, str):
                raise TypeError(f"shapes: names must be str, got {type(name).__name__}")
            shape_t = _shape(shape, f"shapes[{name!r}]")
            layout[name] = (offset, shape_t)
            size = int(np.prod(shape_t, dtype=np.int64))
            offset += -(-size // per_line) * per_line
        self.dtype = dt
        self.layout = layout
        self.flat_params = _aligned_zeros(offset, dt)
        self.flat_grads = _aligned_zeros(offset, dt)
        self.params = self._views(self.flat_params)
        self.grads = self._views(self.flat_grads)

    def _views(self, buffer: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name, (offset, shape) in self.layout.items():
            size = int(np.prod(shape, dtype=np.int64))
            out[name] = buffer[offset : offset + size].reshape(shape)
        return out

    def __getstate__(self) -> dict[str, Any]:
        # Everything but the views, which are made again on load: pickled as arrays they would
        # come back as copies, which a step over the flat buffers no longer updates.
        return {k: v for k, v in self.__dict__.items() if k not in ("params", "grads")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.params = self._views(self.flat_params)
        self.grads = self._views(self.flat_grads)

    def zero_grad(self) -> None:
        """Set every gradient to zero (one memset over the flat buffer)."""
        self.flat_grads.fill(0)

    def __len__(self) -> int:
        return len(self.layout)

    def __repr__(self) -> str:
        return f"FlatParams({len(self.layout)} arrays, {self.flat_params.size} elements, {self.dtype})"
