"""Parameter averaging for NumPy arrays: torch.optim.swa_utils (torch 2.13) without the module.

:class:`AveragedModel` keeps averaged copies of a set of arrays (an exponential moving average,
or SWA's equal-weight average); each :meth:`~AveragedModel.update_parameters` is one native
pass over every array (``_core.blend_``, torch's rounding). :class:`~fusedopt.schedules.SWALR`
is the matching scheduler. See ``docs/wrappers.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from . import _checks, _core
from .optim.optimizer import _state_array
from .schedules.swalr import SWALR

__all__ = [
    "AveragedModel",
    "SWALR",
    "get_ema_avg_fn",
    "get_ema_multi_avg_fn",
    "get_swa_avg_fn",
    "get_swa_multi_avg_fn",
]

ArraysLike = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]
AvgFn = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
MultiAvgFn = Callable[[list[np.ndarray], list[np.ndarray], int], None]

_NAMES = ("averaged", "params")


@dataclass(frozen=True)
class _EMA:
    """In place, one native pass: averaged = lerp(averaged, current, 1 - decay)."""

    decay: float

    def __call__(self, averaged: list[np.ndarray], current: list[np.ndarray], num_averaged: int) -> None:
        _core.blend_(averaged, current, 1.0 - self.decay, "lerp", names=_NAMES)


@dataclass(frozen=True)
class _SWA:
    """In place, one native pass: averaged = lerp(averaged, current, 1/(n + 1)), the weight
    rounded to float32 as torch computes it from the int64 tensor ``n_averaged``."""

    def __call__(self, averaged: list[np.ndarray], current: list[np.ndarray], num_averaged: int) -> None:
        weight = float(np.float32(1.0) / np.float32(int(num_averaged) + 1))
        _core.blend_(averaged, current, weight, "lerp", names=_NAMES)


def get_ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
    """torch's ``get_ema_multi_avg_fn``: ``W_ema = decay*W_ema + (1 - decay)*W`` over all arrays
    at once (torch.lerp with weight 1 - decay)."""
    d = _checks.real(decay, "decay")
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"Invalid decay value {decay!r:.80} provided. Please provide a value in [0,1] range.")
    return _EMA(d)


def get_swa_multi_avg_fn() -> MultiAvgFn:
    """torch's ``get_swa_multi_avg_fn``: the running equal-weight average over all arrays at
    once, ``W_swa = lerp(W_swa, W, 1/(n + 1))``."""
    return _SWA()


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """torch's ``get_ema_avg_fn`` (one array, NumPy, a new array): decay*W_ema + (1 - decay)*W."""
    d = _checks.real(decay, "decay")
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"Invalid decay value {decay!r:.80} provided. Please provide a value in [0,1] range.")

    def ema_update(ema_param: np.ndarray, current_param: np.ndarray, num_averaged: int) -> np.ndarray:
        t = ema_param.dtype.type
        out: np.ndarray = t(d) * ema_param + t(1 - d) * current_param
        return out

    return ema_update


def get_swa_avg_fn() -> AvgFn:
    """torch's ``get_swa_avg_fn`` (one array, NumPy, a new array): W_swa + (W - W_swa)/(n + 1)."""

    def swa_update(averaged_param: np.ndarray, current_param: np.ndarray, num_averaged: int) -> np.ndarray:
        out: np.ndarray = averaged_param + (current_param - averaged_param) / averaged_param.dtype.type(num_averaged + 1)
        return out

    return swa_update


def _arrays(params: Any, what: str) -> tuple[list[np.ndarray], list[str] | None]:
    from .optim.optimizer import Optimizer

    if isinstance(params, Optimizer):
        return params.params, None
    if isinstance(params, np.ndarray):
        params = [params]
    if isinstance(params, Mapping):
        names = list(params)
        return [params[n] for n in names], [str(n) for n in names]
    if isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
        return list(params), None
    raise TypeError(f"{what}: expected a list or dict of arrays (or an optimizer), got {type(params).__name__}")


class AveragedModel:
    """Averaged copies of `params` (a list or dict of arrays, or an optimizer's parameters),
    torch's ``AveragedModel`` for NumPy::

        ema = fo.AveragedModel(params, multi_avg_fn=fo.get_ema_multi_avg_fn(0.999))
        for ...:
            opt.step(grads)
            ema.update_parameters(params)        # one native pass over every array
        evaluate(ema.params)                     # same structure as `params`

    The first :meth:`update_parameters` copies the current arrays; later ones average:

    * ``multi_avg_fn=get_ema_multi_avg_fn(decay)``: ``lerp(avg, p, 1 - decay)``;
    * ``multi_avg_fn=get_swa_multi_avg_fn()``: ``lerp(avg, p, 1/(n + 1))``, the weight rounded
      to float32 as torch computes it from its int64 ``n_averaged`` tensor (for float64 arrays too);
    * neither (default): SWA as torch computes it on the CPU, ``avg + (p - avg)/(n + 1)``;
    * any other ``multi_avg_fn(averaged_list, current_list, n)`` (in place) or
      ``avg_fn(averaged, current, n) -> array`` is called as torch calls it.

    ``n_averaged`` counts the calls (the copy included), as torch's buffer does. torch's
    ``use_buffers`` has no NumPy analogue: there are no buffers here, every array given is
    averaged (pass running statistics among `params` to average them too). The averaged arrays
    start as copies of `params` (``deepcopy(model)``). ``state_dict()`` holds ``n_averaged`` and
    copies of the averages; pickle and deepcopy work.
    """

    def __init__(
        self,
        params: ArraysLike | Any,
        avg_fn: AvgFn | None = None,
        multi_avg_fn: MultiAvgFn | None = None,
    ) -> None:
        if avg_fn is not None and multi_avg_fn is not None:
            raise ValueError("Only one of avg_fn and multi_avg_fn should be provided")
        for name, fn in (("avg_fn", avg_fn), ("multi_avg_fn", multi_avg_fn)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")
        arrays, names = _arrays(params, "params")
        for i, a in enumerate(arrays):
            _core.check_array(a, f"params[{names[i] if names else i}]", written=False, low_precision=True)
        self._names = names
        self._averaged = [a.copy() for a in arrays]
        self.n_averaged = 0
        self.avg_fn = avg_fn
        self.multi_avg_fn = multi_avg_fn

    @property
    def params(self) -> Any:
        """The averaged arrays (live), as a dict when the arrays were given by name, else a list."""
        if self._names is not None:
            return dict(zip(self._names, self._averaged))
        return list(self._averaged)

    def update_parameters(self, params: ArraysLike | Any) -> None:
        """Average the current `params` (same structure, shapes and dtypes as at construction)
        into the averaged arrays, then count it. Checked first: a bad argument changes nothing."""
        current, names = _arrays(params, "params")
        if self._names is not None and names != self._names:
            raise ValueError(f"params: expected arrays named {self._names!r:.200}, got {names!r:.200}")
        if len(current) != len(self._averaged):
            raise ValueError(f"params: expected {len(self._averaged)} arrays, got {len(current)}")
        n = self.n_averaged
        if n == 0:
            _core.blend_(self._averaged, current, 0.0, "copy", names=_NAMES)
        elif self.avg_fn is not None:
            _core.blend_(self._averaged, current, 0.0, "lerp", names=_NAMES)  # only checks: weight 0 keeps a
            new = [np.asarray(self.avg_fn(a, c, n)) for a, c in zip(self._averaged, current)]
            for a, x in zip(self._averaged, new):
                a[...] = x
        elif self.multi_avg_fn is not None:
            self.multi_avg_fn(self._averaged, current, n)
        else:
            _core.blend_(self._averaged, current, float(n + 1), "div", names=_NAMES)
        self.n_averaged = n + 1

    def state_dict(self) -> dict[str, Any]:
        """{'n_averaged': int, 'params': {key: copy}} (keys: the names, or positions)."""
        keys: list[Any] = self._names if self._names is not None else list(range(len(self._averaged)))
        return {"n_averaged": self.n_averaged, "params": {k: a.copy() for k, a in zip(keys, self._averaged)}}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict`; checked, all or nothing."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        if "n_averaged" not in state_dict or "params" not in state_dict:
            raise ValueError("state_dict: expected 'n_averaged' and 'params' entries")
        n = state_dict["n_averaged"]
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"state_dict: 'n_averaged' must be a whole number >= 0, got {n!r:.80}")
        saved = state_dict["params"]
        if not isinstance(saved, Mapping):
            raise TypeError(f"state_dict: 'params' must be a dict, got {type(saved).__name__}")
        keys: list[Any] = self._names if self._names is not None else list(range(len(self._averaged)))
        if set(saved) != set(keys) or len(saved) != len(keys):
            raise ValueError(f"state_dict: 'params' has keys {sorted(saved, key=repr)!r:.200}, expected {keys!r:.200}")
        new = [_state_array(saved[k], a, f"state_dict: params[{k!r}]") for k, a in zip(keys, self._averaged)]
        for a, x in zip(self._averaged, new):
            a[...] = x
        self.n_averaged = int(n)

    def __repr__(self) -> str:
        return f"AveragedModel(n_averaged={self.n_averaged}, arrays={len(self._averaged)})"
