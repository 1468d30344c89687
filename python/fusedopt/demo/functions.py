"""Classic 2-D optimisation test functions, with analytic gradients.

Each :class:`TestFunction` evaluates on points of shape ``(..., 2)``:
``value(p)`` returns shape ``(...)`` and ``grad(p)`` shape ``(..., 2)``, so
the same code gives a single gradient for an optimizer step and a whole
meshgrid for a contour plot::

    from fusedopt.demo.functions import ROSENBROCK
    p = ROSENBROCK.start.copy()           # float64, shape (2,)
    ROSENBROCK.value(p), ROSENBROCK.grad(p)
    X, Y = np.meshgrid(...); Z = ROSENBROCK.value(np.stack([X, Y], -1))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "TestFunction",
    "rosenbrock",
    "rosenbrock_grad",
    "quadratic",
    "quadratic_grad",
    "beale",
    "beale_grad",
    "ROSENBROCK",
    "QUADRATIC",
    "BEALE",
    "FUNCTIONS",
]


@dataclass(frozen=True)
class TestFunction:
    """A named 2-D function with its gradient, minimum and a demo start point."""

    __test__ = False  # not a pytest test class, despite the name

    name: str
    title: str  # for plot titles
    value: Callable[[np.ndarray], np.ndarray]
    grad: Callable[[np.ndarray], np.ndarray]
    minimum: tuple[float, float]
    start: np.ndarray
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return self.value(p)


def _xy(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    if p.shape[-1:] != (2,):
        raise ValueError(f"points must have shape (..., 2); got {p.shape}")
    return p[..., 0], p[..., 1]


# --------------------------------------------------------------------------- #
# Rosenbrock's banana: a long, curved, flat-bottomed valley.
#   f(x, y) = (a - x)² + b (y - x²)²,  minimum 0 at (a, a²) = (1, 1)
# --------------------------------------------------------------------------- #
def rosenbrock(p: np.ndarray, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    x, y = _xy(p)
    out: np.ndarray = (a - x) ** 2 + b * (y - x * x) ** 2
    return out


def rosenbrock_grad(p: np.ndarray, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    x, y = _xy(p)
    r = y - x * x
    return np.stack([-2.0 * (a - x) - 4.0 * b * x * r, 2.0 * b * r], axis=-1)


# --------------------------------------------------------------------------- #
# An ill-conditioned quadratic: a narrow elliptic bowl, condition number 50,
# whose axes are rotated 30 degrees away from the coordinate axes (so
# per-coordinate methods get no free lunch).
#   f(p) = ½ pᵀ H p,  H = R diag(1, 50) Rᵀ,  minimum 0 at (0, 0)
# --------------------------------------------------------------------------- #
QUADRATIC_EIGENVALUES = (1.0, 50.0)
_theta = np.deg2rad(30.0)
_R = np.array([[np.cos(_theta), -np.sin(_theta)], [np.sin(_theta), np.cos(_theta)]])
QUADRATIC_HESSIAN = _R @ np.diag(QUADRATIC_EIGENVALUES) @ _R.T


def quadratic(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    _xy(p)
    out: np.ndarray = 0.5 * np.einsum("...i,ij,...j->...", p, QUADRATIC_HESSIAN, p)
    return out


def quadratic_grad(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    _xy(p)
    out: np.ndarray = p @ QUADRATIC_HESSIAN  # H is symmetric
    return out


# --------------------------------------------------------------------------- #
# Beale's function: flat plateaus and sharp ridges near the corners.
#   f(x, y) = (1.5 - x + xy)² + (2.25 - x + xy²)² + (2.625 - x + xy³)²,
#   minimum 0 at (3, 0.5)
# --------------------------------------------------------------------------- #
_BEALE_C = (1.5, 2.25, 2.625)


def beale(p: np.ndarray) -> np.ndarray:
    x, y = _xy(p)
    out: np.ndarray = sum((c - x + x * y ** (k + 1)) ** 2 for k, c in enumerate(_BEALE_C))
    return out


def beale_grad(p: np.ndarray) -> np.ndarray:
    x, y = _xy(p)
    gx = np.zeros_like(x)
    gy = np.zeros_like(y)
    for k, c in enumerate(_BEALE_C):
        n = k + 1
        r = c - x + x * y**n
        gx = gx + 2.0 * r * (y**n - 1.0)
        gy = gy + 2.0 * r * (n * x * y ** (n - 1))
    return np.stack([gx, gy], axis=-1)


ROSENBROCK = TestFunction(
    name="rosenbrock",
    title="Rosenbrock  (1-x)² + 100(y-x²)²",
    value=rosenbrock,
    grad=rosenbrock_grad,
    minimum=(1.0, 1.0),
    start=np.array([-1.5, 2.0]),
    xlim=(-2.0, 2.0),
    ylim=(-1.0, 3.0),
)

QUADRATIC = TestFunction(
    name="quadratic",
    title="Ill-conditioned quadratic  ½pᵀHp,  κ(H) = 50",
    value=quadratic,
    grad=quadratic_grad,
    minimum=(0.0, 0.0),
    start=np.array([-3.8, -1.5]),
    xlim=(-4.5, 1.5),
    ylim=(-3.0, 1.5),
)

BEALE = TestFunction(
    name="beale",
    title="Beale",
    value=beale,
    grad=beale_grad,
    minimum=(3.0, 0.5),
    start=np.array([1.0, 1.5]),
    xlim=(-0.5, 4.5),
    ylim=(-1.6, 2.0),
)

FUNCTIONS: dict[str, TestFunction] = {
    f.name: f for f in (ROSENBROCK, QUADRATIC, BEALE)
}
