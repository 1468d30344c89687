"""Turning the structures users pass (a list of arrays, a dict of named arrays, param-group
dicts) into param groups, and gradients into a list aligned with them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

ParamsLike = Sequence[np.ndarray] | Mapping[str, np.ndarray] | Sequence[Mapping[str, Any]]
GradsLike = Sequence["np.ndarray | None"] | Mapping[str, "np.ndarray | None"]


def _check_param(p: Any, where: str) -> np.ndarray:
    if not isinstance(p, np.ndarray):
        raise TypeError(f"{where}: expected a numpy.ndarray, got {type(p).__name__}")
    if p.dtype.kind != "f" or p.dtype.itemsize not in (4, 8):
        raise TypeError(f"{where}: dtype {p.dtype} is not supported; use float32 or float64")
    if not p.dtype.isnative:
        raise ValueError(f"{where}: byte order is not native; use arr.astype(arr.dtype.newbyteorder('='))")
    if not p.flags.c_contiguous:
        raise ValueError(f"{where}: must be C-contiguous (an in-place update cannot go through a copy)")
    if not p.flags.writeable:
        raise ValueError(f"{where}: is read-only but is updated in place")
    return p


def split_params(params: Any) -> tuple[list[np.ndarray], list[str] | None]:
    """One group's 'params' value: a list of arrays or a dict of named arrays."""
    if isinstance(params, np.ndarray):
        return [_check_param(params, "params[0]")], None
    if isinstance(params, Mapping):
        names = list(params.keys())
        for n in names:
            if not isinstance(n, str):
                raise TypeError(f"params: names must be str, got {type(n).__name__}")
        return [_check_param(params[n], f"params[{n!r}]") for n in names], names
    if isinstance(params, (set, frozenset)):
        raise TypeError("params: a set has no order; pass a list or a dict")
    if isinstance(params, Iterable) and not isinstance(params, (str, bytes)):
        items = list(params)
        if items and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in items):
            return [_check_param(a, f"params[{n!r}]") for n, a in items], [n for n, _ in items]
        return [_check_param(a, f"params[{i}]") for i, a in enumerate(items)], None
    raise TypeError(f"params: expected a list or dict of arrays, got {type(params).__name__}")


def as_groups(params: Any) -> list[dict[str, Any]]:
    """The constructor's params argument as a list of group dicts (not yet merged with defaults)."""
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes)) and params and all(
        isinstance(g, Mapping) for g in params
    ):
        return [dict(g) for g in params]
    if isinstance(params, Mapping) and "params" in params and not isinstance(params.get("params"), np.ndarray):
        return [dict(params)]
    return [{"params": params}]


def align_grads(grads: Any, keys: Sequence[Any], names_given: bool) -> list[np.ndarray | None]:
    """Grads as a list aligned with the flat parameter order (all groups, in order)."""
    n = len(keys)
    if isinstance(grads, Mapping):
        if not names_given:
            raise TypeError("grads: a dict of grads needs parameters given by name")
        unknown = [k for k in grads if k not in set(keys)]
        if unknown:
            raise ValueError(f"grads: no parameter named {unknown[0]!r}")
        return [grads.get(k) for k in keys]
    if isinstance(grads, np.ndarray):
        if n != 1:
            raise TypeError(f"grads: expected {n} gradients (a list or dict), got one array")
        return [grads]
    if isinstance(grads, Sequence) and not isinstance(grads, (str, bytes)):
        if len(grads) != n:
            raise ValueError(f"grads: expected {n} gradients (one per parameter), got {len(grads)}")
        return list(grads)
    raise TypeError(f"grads: expected a list or dict of arrays, got {type(grads).__name__}")
