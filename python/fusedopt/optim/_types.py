"""The types of the optimizers' signatures: one place for what a hyperparameter, a parameter or
gradient container and the step options may be."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, Union

import numpy as np

from ..sparse import RowSparse

# A number, or a function of the step count (evaluated at each step).
Hyper = Union[float, Callable[[int], float]]
Betas = tuple[Hyper, Hyper]


def as_betas(betas: Any) -> Any:
    """`betas` as a param group keeps them: a list becomes a tuple, whose items the engine may
    then evaluate as callables (torch-style ``(0.9, lambda t: ...)``); anything else is left for
    the engine's check to name."""
    return tuple(betas) if isinstance(betas, list) else betas


def at_step(value: Any, count: int) -> Any:
    """A hyperparameter's value at step count `count` (a callable is called with it), for the
    optimizers that step in Python (LBFGS, Muon); the engine's own does the same natively."""
    return value(count) if callable(value) else value


ParamsLike = Union[Sequence[np.ndarray], Mapping[str, np.ndarray], Sequence[Mapping[str, Any]], np.ndarray]
# A gradient: a dense array, or the rows it touches (fusedopt.RowSparse, for the optimizers that
# take it); in a list or dict also a NumPy scalar for a 0-d parameter (what np.sum returns).
Grad = Union[np.ndarray, RowSparse]
GradsLike = Union[Sequence[Union[Grad, np.generic, None]], Mapping[str, Union[Grad, np.generic, None]], Grad]


class StepOptions(TypedDict, total=False):
    """What every optimizer takes besides its hyperparameters (see Optimizer)."""

    backend: Literal["native", "numpy"]
    max_grad_norm: float | None
    clip_value: float | None
    clip_scope: Literal["group", "global"]
    nonfinite: Literal["propagate", "skip", "raise"]
    master_weights: bool
    stochastic_rounding: bool
    rounding_seed: int
    state_dtype: Literal["bfloat16", "int8"] | None
