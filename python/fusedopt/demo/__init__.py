"""Watch fusedopt's optimizers work: ``python -m fusedopt demo [--out DIR]``.

* :mod:`fusedopt.demo.functions` — Rosenbrock, an ill-conditioned quadratic
  and Beale, with gradients.
* :mod:`fusedopt.demo.runs` — run optimizers on them (and on a mini-batch
  regression, with learning-rate schedules), collect paths and losses.
* :mod:`fusedopt.demo.plots` — the PNGs (needs matplotlib, the ``plot`` extra).
* :mod:`fusedopt.demo.cli` — the command line.

Nothing here imports matplotlib until a plot is drawn.
"""

from .cli import main
from .functions import BEALE, FUNCTIONS, QUADRATIC, ROSENBROCK, TestFunction

__all__ = ["main", "BEALE", "FUNCTIONS", "QUADRATIC", "ROSENBROCK", "TestFunction"]
