"""Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back") as a
wrapper over any fusedopt optimizer, with pytorch_optimizer's ``Lookahead`` semantics."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _checks, _core
from ._types import GradsLike
from ..sparse import RowSparse
from .optimizer import Key, Optimizer, _state_array

_COUNTER = "lookahead_counter"  # per param group, as pytorch_optimizer's 'counter'


def aligned_grads(optimizer: Optimizer, grads: GradsLike) -> list[Any]:
    """`grads` as a list aligned with ``optimizer.params`` (None where a parameter has none),
    for a structure the optimizer's step has already accepted."""
    keys = optimizer._engine.keys()
    if isinstance(grads, (np.ndarray, RowSparse)):  # one parameter's gradient
        return [grads]
    if isinstance(grads, Mapping):
        return [grads.get(k) for k in keys]
    return list(grads)


class Lookahead:
    """Lookahead over `optimizer` (any fusedopt optimizer): the inner optimizer takes k fast
    steps, then the slow weights move towards the fast ones and the fast ones restart from them::

        every k-th step, per param group:   fast = lerp(fast, slow, 1 - alpha)   # = slow + alpha*(fast - slow)
                                            slow = fast

    one native pass over all arrays (``_core.blend_``, torch.lerp's rounding), after the inner
    optimizer's own step. As in pytorch_optimizer's ``Lookahead`` (its default
    ``pullback_momentum='none'``, the only mode here): the slow weights start as copies of the
    parameters; each group counts steps in ``group['lookahead_counter']``; a parameter whose
    gradient is None at a sync step is not synced. A step the inner optimizer skips
    (``nonfinite="skip"``) is not counted.

    ``param_groups`` are the inner optimizer's own list, so schedulers built on the wrapper drive
    it; ``state_dict()`` holds the inner optimizer's plus the slow weights. Evaluate with the
    slow weights by copying them: ``for p, s in zip(la.params, la.slow_params): ...``.
    """

    optimizer: Optimizer
    k: int
    alpha: float

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a fusedopt optimizer, got {type(optimizer).__name__}")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(f"k: expected an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k!r}")
        a = _checks.real(alpha, "alpha")
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha: must be in [0, 1], got {alpha!r:.80}")
        self.optimizer = optimizer
        self.k = int(k)
        self.alpha = a
        self._slow: dict[Key, np.ndarray] = {}
        for group in optimizer.param_groups:
            self._init_group(group)

    def _init_group(self, group: dict[str, Any]) -> None:
        group.setdefault(_COUNTER, 0)
        for key, p in zip(self.optimizer._group_keys(group), group["params"]):
            _core.check_array(p, f"params[{key!r}]", low_precision=True)  # C order: the slow copy's
            if key not in self._slow:
                self._slow[key] = p.copy()

    # ---- what the inner optimizer keeps ------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The inner optimizer's param groups (the same list: schedulers drive it)."""
        return self.optimizer.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    @property
    def state(self) -> dict[Key, dict[str, Any]]:
        """The inner optimizer's state."""
        return self.optimizer.state

    @property
    def params(self) -> list[np.ndarray]:
        return self.optimizer.params

    @property
    def step_count(self) -> int:
        return self.optimizer.step_count

    @property
    def slow_params(self) -> list[np.ndarray]:
        """The slow weights (live arrays), in the order of ``params``."""
        return [self._slow[key] for key in self.optimizer._engine.keys()]

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)
        self._init_group(self.param_groups[-1])

    # ---- the step ---------------------------------------------------------------------------

    def step(self, grads: GradsLike) -> None:
        """The inner optimizer's step, then, in each group whose counter reaches k, the sync."""
        skipped = self.optimizer.skipped_steps
        self.optimizer.step(grads)
        if self.optimizer.skipped_steps != skipped:
            return
        due = []
        for group in self.param_groups:
            group[_COUNTER] = group.get(_COUNTER, 0) + 1
            if group[_COUNTER] >= self.k:
                group[_COUNTER] = 0
                due.append(group)
        if due:
            self._sync(due, aligned_grads(self.optimizer, grads))

    def _sync(self, groups: list[dict[str, Any]], grads: list[Any]) -> None:
        fast, slow = [], []
        keys = self.optimizer._engine.keys()
        at = 0
        for group in self.param_groups:
            n = len(group["params"])
            if any(group is g for g in groups):
                for j, p in enumerate(group["params"]):
                    if grads[at + j] is not None:
                        fast.append(p)
                        slow.append(self._slow[keys[at + j]])
            at += n
        _core.blend_(fast, slow, 1.0 - self.alpha, "lerp_sync", names=("params", "slow_params"))

    # ---- state_dict -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """{'optimizer': the inner optimizer's state_dict, 'slow_params': {key: copy}} (the
        group counters travel in the inner optimizer's param groups)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "slow_params": {key: s.copy() for key, s in self._slow.items()},
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """All or nothing: the slow weights are checked before the inner optimizer loads."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        if "optimizer" not in state_dict or "slow_params" not in state_dict:
            raise ValueError("state_dict: expected 'optimizer' and 'slow_params' entries")
        saved = state_dict["slow_params"]
        if not isinstance(saved, Mapping):
            raise TypeError(f"state_dict: 'slow_params' must be a dict, got {type(saved).__name__}")
        keys = self.optimizer._engine.keys()
        if set(saved) != set(keys) or len(saved) != len(keys):
            raise ValueError(f"state_dict: 'slow_params' has keys {sorted(saved, key=repr)!r:.200}, "
                             f"the parameters are {sorted(keys, key=repr)!r:.200}")
        slow = {key: _state_array(saved[key], p, f"state_dict: slow_params[{key!r}]")
                for key, p in zip(keys, self.optimizer.params)}
        self.optimizer.load_state_dict(state_dict["optimizer"])
        self._slow = slow

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, optimizer={self.optimizer!r})"
