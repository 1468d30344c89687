"""Every update rule in plain NumPy: the reference the native kernels are tested against and
the baseline they are benchmarked against (``backend="numpy"`` on any optimizer runs it).

Each function updates its arrays in place and takes exactly the per-step scalars the native
kernel takes (derived once, in float64, by the optimizer classes). The operations follow
torch.optim's order; where torch uses a fused multiply-add this computes ``a*b + c`` with two
roundings, which is what the x86-64 baseline kernels do, so on that target the two backends
agree bit for bit. Every scalar is rounded to the array dtype once, as the kernels do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._grad_transform import GradTransform

_IDENTITY = GradTransform()


def _lerp(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """torch.lerp with a scalar weight (LerpKernel.cpp's two branches)."""
    t = a.dtype.type
    w = t(weight)
    if -0.5 < weight < 0.5:
        return w * (b - a) + a
    return (w - t(1)) * (b - a) + b


def _maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(a, b)  # propagates NaN, like torch.maximum


def sgd(
    p: np.ndarray,
    g: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    transform: GradTransform = _IDENTITY,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    first_step: bool,
    classic: bool,
) -> None:
    t = p.dtype.type
    d = transform.apply(g)
    if weight_decay != 0:
        d = p * t(weight_decay) + d
    if classic:  # v = mu*v - lr*g; p += v (Nesterov: p += -mu*v_prev + (1+mu)*v)
        assert momentum_buffer is not None
        mom = t(momentum)
        prev = momentum_buffer.copy()
        now = d * t(-lr) + prev * mom
        momentum_buffer[...] = now
        p[...] = p + ((now * (t(1) + mom) + (-mom) * prev) if nesterov else now)
        return
    if momentum != 0:
        assert momentum_buffer is not None
        mom = t(momentum)
        buf = d.copy() if first_step else d * t(1.0 - dampening) + momentum_buffer * mom
        momentum_buffer[...] = buf
        d = buf * mom + d if nesterov else buf
    p[...] = d * t(-lr) + p


def adagrad(
    p: np.ndarray,
    g: np.ndarray,
    sum: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    clr: float,
    weight_decay: float,
    eps: float,
) -> None:
    t = p.dtype.type
    d = transform.apply(g)
    if weight_decay != 0:
        d = p * t(weight_decay) + d
    sum[...] = d * d + sum
    p[...] = p + (t(-clr) * d) / (np.sqrt(sum) + t(eps))


def rmsprop(
    p: np.ndarray,
    g: np.ndarray,
    square_avg: np.ndarray,
    momentum_buffer: np.ndarray | None,
    grad_avg: np.ndarray | None,
    *,
    transform: GradTransform = _IDENTITY,
    lr: float,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
) -> None:
    t = p.dtype.type
    d = transform.apply(g)
    if weight_decay != 0:
        d = p * t(weight_decay) + d
    square_avg[...] = (t(1.0 - alpha) * d) * d + square_avg * t(alpha)
    if centered:
        assert grad_avg is not None
        grad_avg[...] = _lerp(grad_avg, d, 1.0 - alpha)
        avg = np.sqrt(-grad_avg * grad_avg + square_avg) + t(eps)
    else:
        avg = np.sqrt(square_avg) + t(eps)
    if momentum > 0:
        assert momentum_buffer is not None
        momentum_buffer[...] = momentum_buffer * t(momentum) + d / avg
        p[...] = momentum_buffer * t(-lr) + p
    else:
        p[...] = p + (t(-lr) * d) / avg


def _weight_decay(p: np.ndarray, d: np.ndarray, weight_decay: float, decay: float, decoupled: bool) -> np.ndarray:
    """Adam family: decoupled scales p first; coupled adds wd*p to the gradient."""
    t = p.dtype.type
    if weight_decay != 0:
        if decoupled:
            p[...] = p * t(decay)
        else:
            d = p * t(weight_decay) + d
    return d


def _second_moment(v: np.ndarray, d: np.ndarray, beta2: float) -> None:
    t = v.dtype.type
    v[...] = (t(1.0 - beta2) * d) * d + v * t(beta2)


def adam(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    max_exp_avg_sq: np.ndarray | None,
    *,
    transform: GradTransform = _IDENTITY,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    step_size: float,
    bc2_sqrt: float,
    decay: float,
    amsgrad: bool,
    decoupled: bool,
) -> None:
    t = p.dtype.type
    d = _weight_decay(p, transform.apply(g), weight_decay, decay, decoupled)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    _second_moment(exp_avg_sq, d, beta2)
    v = exp_avg_sq
    if amsgrad:
        assert max_exp_avg_sq is not None
        max_exp_avg_sq[...] = _maximum(max_exp_avg_sq, exp_avg_sq)
        v = max_exp_avg_sq
    denom = np.sqrt(v) / t(bc2_sqrt) + t(eps)
    p[...] = p + (t(-step_size) * exp_avg) / denom


def adamax(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_inf: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    clr: float,
) -> None:
    t = p.dtype.type
    d = _weight_decay(p, transform.apply(g), weight_decay, 1.0, False)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    exp_inf[...] = _maximum(exp_inf * t(beta2), np.abs(d) + t(eps))
    p[...] = p + (t(-clr) * exp_avg) / exp_inf


def nadam(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    bc2: float,
    grad_coef: float,
    avg_coef: float,
    decay: float,
    decoupled: bool,
) -> None:
    t = p.dtype.type
    d = _weight_decay(p, transform.apply(g), weight_decay, decay, decoupled)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    _second_moment(exp_avg_sq, d, beta2)
    denom = np.sqrt(exp_avg_sq / t(bc2)) + t(eps)
    p[...] = p + (t(grad_coef) * d) / denom
    p[...] = p + (t(avg_coef) * exp_avg) / denom


def radam(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    lr: float,
    bc1: float,
    bc2_sqrt: float,
    rect: float,
    decay: float,
    rectified: bool,
    decoupled: bool,
) -> None:
    t = p.dtype.type
    d = _weight_decay(p, transform.apply(g), weight_decay, decay, decoupled)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    _second_moment(exp_avg_sq, d, beta2)
    x = (exp_avg / t(bc1)) * t(lr)
    if rectified:
        adaptive = (t(1) / (np.sqrt(exp_avg_sq) + t(eps))) * t(bc2_sqrt)
        x = (x * adaptive) * t(rect)
    p[...] = p - x


def lion(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    lr: float,
    beta1: float,
    beta2: float,
    decay: float,
) -> None:
    t = p.dtype.type
    d = transform.apply(g)
    c = _lerp(exp_avg, d, 1.0 - beta1)
    p[...] = np.sign(c) * t(-lr) + p * t(decay)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta2)


# ---------------------------------------------------------------------------------------------
# Gradient norms, for clipping: float64 accumulation, scaled so nothing overflows or underflows.


def total_norm(arrays: Sequence[np.ndarray], norm_type: float = 2.0) -> float:
    """The norm_type-norm over every element of every array (torch.nn.utils.get_total_norm)."""
    p = float(norm_type)
    flat = [np.abs(np.asarray(a, dtype=np.float64)).ravel() for a in arrays]
    flat = [f for f in flat if f.size]
    if not flat:
        return 0.0
    if any(np.isnan(f).any() for f in flat):
        return math.nan
    if p == math.inf:
        return float(max(f.max() for f in flat))
    if p == -math.inf:
        return float(min(f.min() for f in flat))
    top = max(f.max() for f in flat)
    if top == 0 or math.isinf(top):
        return float(top)
    scale = math.ldexp(1.0, -math.frexp(top)[1])
    s = math.fsum(float(np.sum((f * scale) ** p)) for f in flat)
    return s ** (1.0 / p) / scale
