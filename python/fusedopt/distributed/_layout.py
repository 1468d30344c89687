"""An optimizer's parameters as one flat range (in order over every group), its gradients packed
into one buffer for a single collective, and the range cut into per-rank shards."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .. import _core
from ..optim._grads import scalar_as_array
from ..optim.optimizer import Optimizer


def shard_bounds(total: int, world_size: int) -> list[int]:
    """Rank r owns elements [b[r], b[r + 1]): whole chunks of the norm pass's grid (so a shard's
    partial norms fold into the single-process bits), as even as whole chunks allow; with fewer
    chunks than ranks, the last ranks own nothing."""
    chunk = _core.norm_chunk_size(total)
    chunks = -(-total // chunk)
    bounds = [0]
    for r in range(world_size):
        mine = chunks // world_size + (1 if r < chunks % world_size else 0)
        bounds.append(min(total, bounds[-1] + mine * chunk))
    return bounds


class FlatLayout:
    """Where each parameter of `optimizer` sits in one flat range of its (single) dtype."""

    def __init__(self, optimizer: Any) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a fusedopt optimizer, got {type(optimizer).__name__}")
        self.params: list[np.ndarray] = optimizer.params
        self.keys: list[Any] = list(optimizer._engine.keys())
        self.named = bool(self.keys) and isinstance(self.keys[0], str)
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise TypeError(f"optimizer: a distributed step needs one parameter dtype, got {sorted(map(str, dtypes))}")
        self.dtype: np.dtype[Any] = self.params[0].dtype
        self.offsets = [0]
        for p in self.params:
            self.offsets.append(self.offsets[-1] + p.size)
        self.total = self.offsets[-1]
        self.group_ranges: list[tuple[int, int]] = []
        self.group_of: list[int] = []
        for j, g in enumerate(optimizer.param_groups):
            i = len(self.group_of)
            self.group_ranges.append((self.offsets[i], self.offsets[i + len(g["params"])]))
            self.group_of += [j] * len(g["params"])
        # One parameter: its own buffer is the flat range (FlatParams' flat_params), no copies.
        self.single = len(self.params) == 1

    def flat_view(self, p: np.ndarray) -> np.ndarray:
        return p.reshape(-1)  # C-contiguous (the optimizer checked it): a view

    def views(self, buf: np.ndarray, lo: int, hi: int) -> list[np.ndarray]:
        """buf (holding elements [lo, hi) of the flat range) cut where parameters begin."""
        out = []
        for i in range(len(self.params)):
            a, b = max(lo, self.offsets[i]), min(hi, self.offsets[i + 1])
            if a < b:
                out.append(buf[a - lo : b - lo])
        return out

    def like_params(self, flat: np.ndarray) -> list[np.ndarray]:
        """flat cut into arrays shaped like the parameters."""
        return [flat[self.offsets[i] : self.offsets[i + 1]].reshape(p.shape) for i, p in enumerate(self.params)]

    def structured(self, arrays: list[np.ndarray]) -> Any:
        """arrays in the structure the optimizer takes (a dict by name where params are named)."""
        return dict(zip(self.keys, arrays)) if self.named else arrays

    def grad_list(self, grads: Any) -> list[np.ndarray]:
        """The gradients, in parameter order, checked: every parameter needs one (a None skips its
        parameter in a plain step; here every rank must step the same parameters)."""
        if isinstance(grads, np.ndarray):
            items: list[Any] = [grads]
        elif isinstance(grads, Mapping):
            missing = [k for k in self.keys if k not in grads]
            if not self.named or missing or len(grads) != len(self.keys):
                raise ValueError(f"grads: expected one gradient for each of the parameters {self.keys!r:.200}")
            items = [grads[k] for k in self.keys]
        elif isinstance(grads, Sequence) and not isinstance(grads, (str, bytes)):
            items = list(grads)
        else:
            raise TypeError(f"grads: expected a list or dict of arrays, got {type(grads).__name__}")
        if len(items) != len(self.params):
            raise ValueError(f"grads: expected {len(self.params)} gradients, got {len(items)}")
        items = [scalar_as_array(g, p) for g, p in zip(items, self.params)]
        for k, g, p in zip(self.keys, items, self.params):
            if g is None:
                raise ValueError(f"grads for parameter {k!r}: a distributed step needs every gradient (not None)")
            _core.check_array(g, f"grads for parameter {k!r}", written=False, low_precision=True)
            if g.dtype != p.dtype or g.shape != p.shape:
                raise ValueError(
                    f"grads for parameter {k!r}: expected {p.dtype} {p.shape}, got {g.dtype} {g.shape}"
                )
        return items

    def pack(self, grads: list[np.ndarray], out: np.ndarray) -> np.ndarray:
        """The gradients as one flat buffer: the single gradient itself, else copied into `out`."""
        if self.single:
            return self.flat_view(grads[0])
        for i, g in enumerate(grads):
            np.copyto(out[self.offsets[i] : self.offsets[i + 1]], g.reshape(-1))
        return out

    def copy_in(self, flat: np.ndarray, lo: int = 0, hi: int | None = None) -> None:
        """Parameters' elements [lo, hi) into flat."""
        hi = self.total if hi is None else hi
        for i, p in enumerate(self.params):
            a, b = max(lo, self.offsets[i]), min(hi, self.offsets[i + 1])
            if a < b:
                o = self.offsets[i]
                np.copyto(flat[a:b], p.reshape(-1)[a - o : b - o])

    def copy_out(self, flat: np.ndarray) -> None:
        for i, p in enumerate(self.params):
            np.copyto(p.reshape(-1), flat[self.offsets[i] : self.offsets[i + 1]])


def aligned_empty(n: int, dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialised buffer on a 64-byte boundary (the kernels' best case)."""
    from ..flat import _aligned_zeros

    return _aligned_zeros(n, dtype)
