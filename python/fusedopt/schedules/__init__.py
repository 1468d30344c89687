"""Learning-rate and momentum schedules, in the two shapes users know.

1. **Scheduler classes** (``torch.optim.lr_scheduler`` protocol, torch 2.13
   values): build one on a fusedopt optimizer and call ``step()`` after each
   ``optimizer.step(grads)``; it writes the param groups' ``lr`` (and the
   momentum or beta1 for :class:`CyclicLR` / :class:`OneCycleLR`)::

       opt = fusedopt.SGD(params, lr=0.1, momentum=0.9)
       sched = StepLR(opt, step_size=30, gamma=0.1)

2. **Pure functions of the step** (optax's shape): pass the returned callable
   as the hyperparameter itself; the optimizer evaluates it at each step's
   count, so a resumed run continues exactly::

       opt = fusedopt.Adam(params, lr=warmup_cosine_decay(0.0, 1e-3, 500, 10_000))

A given hyperparameter uses one shape or the other: a scheduler class on a
group whose ``lr`` is a callable raises TypeError. See ``docs/schedules.md``.
"""

from __future__ import annotations

from .functions import (
    Schedule,
    constant,
    cosine_decay,
    exponential_decay,
    join,
    linear,
    one_cycle,
    one_cycle_momentum,
    piecewise_constant,
    polynomial,
    sgdr,
    warmup_cosine_decay,
)
from .lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)
from .lr_scheduler_cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from .swalr import SWALR

__all__ = [
    # scheduler classes
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
    "LambdaLR",
    "MultiplicativeLR",
    "SequentialLR",
    "ChainedScheduler",
    "SWALR",
    # pure functions of the step
    "Schedule",
    "constant",
    "linear",
    "polynomial",
    "cosine_decay",
    "warmup_cosine_decay",
    "exponential_decay",
    "piecewise_constant",
    "one_cycle",
    "one_cycle_momentum",
    "sgdr",
    "join",
]


def __dir__() -> list[str]:
    return sorted(__all__)
