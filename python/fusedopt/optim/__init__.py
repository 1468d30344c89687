"""Optimizer classes: torch.optim's parameter-group model over NumPy arrays."""

from .optimizer import NonFiniteGradientError, Optimizer
from .sgd import SGD, SGDMomentum

__all__ = ["NonFiniteGradientError", "Optimizer", "SGD", "SGDMomentum"]
