"""The types of the optimizers' signatures: one place for what a hyperparameter, a parameter or
gradient container and the step options may be."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, Union

import numpy as np

# A number, or a function of the step count (evaluated at each step).
Hyper = Union[float, Callable[[int], float]]
Betas = tuple[Hyper, Hyper]

ParamsLike = Union[Sequence[np.ndarray], Mapping[str, np.ndarray], Sequence[Mapping[str, Any]], np.ndarray]
GradsLike = Union[Sequence[Union[np.ndarray, None]], Mapping[str, Union[np.ndarray, None]], np.ndarray]


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
