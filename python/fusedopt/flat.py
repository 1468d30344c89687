"""A flat arena: a model's parameters, gradients and optimizer state as views into contiguous
buffers, so a step over hundreds of layers is one loop over one range."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

_ALIGN_BYTES = 64  # each view starts on its own cache line


def _aligned_zeros(n: int, dtype: np.dtype) -> np.ndarray:
    itemsize = dtype.itemsize
    raw = np.zeros(n + _ALIGN_BYTES // itemsize, dtype=dtype)
    shift = (-raw.ctypes.data % _ALIGN_BYTES) // itemsize
    return raw[shift : shift + n]


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
    gradients. Options that differ per layer (no weight decay on biases) need one arena per
    param group.
    """

    def __init__(self, shapes: Mapping[str, Sequence[int] | int], dtype: type | np.dtype = np.float32) -> None:
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dt}")
        if not isinstance(shapes, Mapping) or not shapes:
            raise ValueError("shapes: expected a non-empty dict of name -> shape")
        per_line = _ALIGN_BYTES // dt.itemsize
        layout: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for name, shape in shapes.items():
            shape_t = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
            if any(s < 0 for s in shape_t):
                raise ValueError(f"shapes[{name!r}]: negative dimension in {shape_t}")
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

    def zero_grad(self) -> None:
        """Set every gradient to zero (one memset over the flat buffer)."""
        self.flat_grads.fill(0)

    def __len__(self) -> int:
        return len(self.layout)

    def __repr__(self) -> str:
        return f"FlatParams({len(self.layout)} arrays, {self.flat_params.size} elements, {self.dtype})"
