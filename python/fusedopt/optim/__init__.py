"""Optimizer classes: torch.optim's parameter-group model over NumPy arrays."""

from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam_variants import Adamax, NAdam, RAdam
from .asgd import ASGD
from .lbfgs import LBFGS
from .lion import Lion
from .lookahead import Lookahead
from .muon import Muon
from .optimizer import NonFiniteGradientError, Optimizer
from .rmsprop import RMSprop
from .schedule_free import AdamWScheduleFree, SGDScheduleFree
from .rprop import Rprop
from .sgd import SGD, SGDMomentum
from .sparse_adam import SparseAdam
from .trust_ratio import LARS, Lamb

__all__ = [
    "ASGD",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "AdamWScheduleFree",
    "Adamax",
    "LARS",
    "Lamb",
    "LBFGS",
    "Lion",
    "Lookahead",
    "Muon",
    "NAdam",
    "NonFiniteGradientError",
    "Optimizer",
    "RAdam",
    "RMSprop",
    "Rprop",
    "SGD",
    "SGDMomentum",
    "SparseAdam",
    "SGDScheduleFree",
]
