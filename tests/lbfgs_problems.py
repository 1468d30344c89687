"""Smooth test problems for LBFGS, in NumPy: each gives parameters and a loss-and-gradient
function of them. torch's runs use the same NumPy gradients, so a difference between the two
optimizers is the optimizers' own."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LossGrad = Callable[[list[np.ndarray]], tuple[float, list[np.ndarray]]]


def _flat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([a.reshape(-1) for a in arrays])


def split(flat: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, o = [], 0
    for a in like:
        out.append(flat[o : o + a.size].reshape(a.shape))
        o += a.size
    return out


def rosenbrock(n: int, dtype: type) -> tuple[list[np.ndarray], LossGrad]:
    """sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2, x split over a vector and a matrix."""
    x0 = np.tile(np.array([-1.2, 1.0]), n)[:n] if n > 1 else np.array([-1.2])
    k = n // 2
    params = [x0[:k].astype(dtype), x0[k:].astype(dtype)]

    def f(ps: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        x = _flat(ps)
        a, b = x[:-1], x[1:]
        loss = np.sum(100 * (b - a * a) ** 2 + (1 - a) ** 2)
        g = np.zeros_like(x)
        g[:-1] = -400 * a * (b - a * a) - 2 * (1 - a)
        g[1:] += 200 * (b - a * a)
        return loss, split(g, ps)

    return params, f


def logistic(dtype: type, m: int = 64, d: int = 7, l2: float = 1e-2, seed: int = 0) -> tuple[list[np.ndarray], LossGrad]:
    """Mean logistic loss with an L2 penalty on the weights; parameters w (d,) and b ()."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d)).astype(dtype)
    y = np.where(X @ rng.standard_normal(d).astype(dtype) + 0.3 * rng.standard_normal(m).astype(dtype) > 0, 1, -1).astype(dtype)
    params = [np.zeros(d, dtype), np.zeros((), dtype)]

    def f(ps: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        w, b = ps
        z = y * (X @ w + b)
        loss = np.mean(np.logaddexp(0, -z)) + dtype(0.5 * l2) * np.dot(w, w)
        s = -y / (1 + np.exp(z)) / dtype(m)
        return loss, [X.T @ s + dtype(l2) * w, np.asarray(np.sum(s), dtype)]

    return params, f


def quadratic(dtype: type, n: int = 20, seed: int = 1) -> tuple[list[np.ndarray], LossGrad]:
    """0.5 x'Ax - b'x with A symmetric positive definite (condition ~100), x a (4, 5) matrix."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = ((Q * np.geomspace(1, 100, n)) @ Q.T).astype(dtype)
    A = (A + A.T) / dtype(2)
    bvec = rng.standard_normal(n).astype(dtype)
    params = [rng.standard_normal((4, 5)).astype(dtype)]

    def f(ps: list[np.ndarray]) -> tuple[float, list[np.ndarray]]:
        x = ps[0].reshape(-1)
        Ax = A @ x
        return dtype(0.5) * np.dot(x, Ax) - np.dot(bvec, x), [(Ax - bvec).reshape(4, 5)]

    return params, f


PROBLEMS: dict[str, Callable[[type], tuple[list[np.ndarray], LossGrad]]] = {
    "rosenbrock2": lambda dt: rosenbrock(2, dt),
    "rosenbrock5": lambda dt: rosenbrock(5, dt),
    "rosenbrock10": lambda dt: rosenbrock(10, dt),
    "logistic": logistic,
    "quadratic": quadratic,
}
