"""``x += alpha * y`` over fixed arrays in one native call, for the optimizers whose vector
updates sit between steps of non-element-wise work (LBFGS's two-loop recursion, Muon's final
update)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .sgd import SGD


class Axpy:
    """torch's ``x.add_(y, alpha=alpha)`` for each of `arrays`: SGD without momentum is exactly
    this update with lr = -alpha, a fused multiply-add on the FMA targets as torch's vector loop
    is, ``a*b + c`` on the baseline target and with ``backend="numpy"``. With ``separate=True``
    every array has its own alpha (one param group each)."""

    def __init__(self, arrays: Sequence[np.ndarray], backend: str, *, separate: bool = False) -> None:
        groups = [{"params": [a]} for a in arrays] if separate else [{"params": list(arrays)}]
        self._opt = SGD(groups, lr=0.0, backend=backend)  # type: ignore[arg-type]
        self.arrays = list(arrays)

    def __call__(self, alpha: Any, ys: Sequence[np.ndarray | None]) -> None:
        """`alpha`: one number, or one per array (``separate=True``); a None `y` skips its array."""
        groups = self._opt.param_groups
        alphas = alpha if isinstance(alpha, (list, tuple)) else [alpha] * len(groups)
        for g, a in zip(groups, alphas):
            g["lr"] = -float(a)
        self._opt.step(list(ys))
