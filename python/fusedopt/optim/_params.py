"""Turning the structures users pass (a list of arrays, a dict of named arrays, param-group
dicts) into param groups."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

import numpy as np

from .. import _core



def _check_param(p: Any, where: str) -> np.ndarray:
    _core.check_array(p, where, low_precision=True, dense=True)  # as a step checks it: dtype, layout, writeable, no subclass
    return p  # type: ignore[no-any-return]


def refuse_overlap(groups: Sequence[tuple[Sequence[np.ndarray], Sequence[str] | None]],
                   earlier: Sequence[np.ndarray] = ()) -> None:
    """ValueError naming a parameter of the new `groups` (each its arrays and their names or
    None) that shares memory with another of them or with one of `earlier` (other groups').
    One native pass over all of them, however many groups. (A step refuses it too; this names
    it at construction.)"""
    new = [p for arrays, _ in groups for p in arrays]
    clash = _core.first_overlap([*earlier, *new])
    if clash is None or clash[1] < len(earlier):  # (earlier arrays re-pointed since: the step's to refuse)
        return
    starts = list(accumulate((len(arrays) for arrays, _ in groups), initial=len(earlier)))
    at = bisect_right(starts, clash[1]) - 1  # the group of the later array
    names = groups[at][1]

    def label(k: int) -> str:
        return f"params[{names[k - starts[at]]!r}]" if names else f"params[{k - starts[at]}]"

    other = label(clash[0]) if clash[0] >= starts[at] else "a parameter of another param group"
    raise ValueError(f"{label(clash[1])}: shares memory with {other}; every updated array must have its own buffer")


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
        named = [isinstance(x, tuple) for x in items]  # torch: a (name, array) tuple
        if items and all(named):
            for i, x in enumerate(items):
                if len(x) != 2 or not isinstance(x[0], str):
                    raise TypeError(f"params[{i}]: expected a (name, array) pair with a str name, got {x!r:.80}")
            names = [n for n, _ in items]
            if len(set(names)) != len(names):
                twice = next(n for i, n in enumerate(names) if n in names[:i])
                raise ValueError(f"params: the name {twice!r} is given twice (a parameter's state is kept under its name)")
            return [_check_param(a, f"params[{n!r}]") for n, a in items], names
        if any(named):
            raise ValueError("params: all params must be given with names, or none (some names are missing)")
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
