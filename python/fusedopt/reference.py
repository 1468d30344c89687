"""Every update rule in plain NumPy: the reference the native kernels are tested against and
the baseline they are benchmarked against (``backend="numpy"`` on any optimizer runs it).

Each function updates its arrays in place from the param group's hyperparameters (as resolved
at the step: ``lr``, ``betas``, ...) and the parameter's counters (``step``: steps taken before
this one; ``fresh``: its state was just created; NAdam's ``mu_product``). It derives its own
float64 scalars from them, independently of the native rule headers, so a mistake in either
derivation shows as a difference. ``maximize`` arrives folded into ``transform``; hyperparameters
a rule does not use (``maximize``, ``initial_accumulator_value``) are ignored.

The operations follow torch.optim's order; where torch uses a fused multiply-add this computes
``a*b + c`` with two roundings, which is what the x86-64 baseline kernels do, so on that target
the two backends agree bit for bit. Every scalar is rounded to the array dtype once, as the
kernels do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._grad_transform import GradTransform
from . import compressed_state
from .sparse import RowSparse

_IDENTITY = GradTransform()


def _lerp(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """torch.lerp with a scalar weight (LerpKernel.cpp's two branches)."""
    t = a.dtype.type
    w = t(weight)
    out: np.ndarray = w * (b - a) + a if -0.5 < weight < 0.5 else (w - t(1)) * (b - a) + b
    return out


def _maximum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(a, b)  # propagates NaN, like torch.maximum
    return out


def _decay(lr: float, weight_decay: float, decoupled: bool) -> float:
    """The factor p is multiplied by before a decoupled update: 1 - lr*weight_decay."""
    return 1.0 - float(lr) * float(weight_decay) if decoupled else 1.0


def sgd(
    p: np.ndarray,
    g: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    transform: GradTransform = _IDENTITY,
    fresh: bool,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    formulation: str,
    **_unused: object,
) -> None:
    t = p.dtype.type
    lr, momentum, dampening = float(lr), float(momentum), float(dampening)
    d = _coupled_grad(p, g, transform, weight_decay)
    if formulation == "classic":  # v = mu*v - lr*g; p += v (Nesterov: p += -mu*v_prev + (1+mu)*v)
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
        buf = d.copy() if fresh else d * t(1.0 - dampening) + momentum_buffer * mom
        momentum_buffer[...] = buf
        d = buf * mom + d if nesterov else buf
    p[...] = d * t(-lr) + p


def adagrad(
    p: np.ndarray,
    g: np.ndarray,
    sum: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    sparse: bool = False,
    **_unused: object,
) -> None:
    t = p.dtype.type
    clr = float(lr) / (1 + (float(step + 1) - 1) * float(lr_decay))
    d = transform.apply(g)
    if sparse:  # torch's sparse path: the square rounded, then p += -clr * (g / std) fused
        sum[...] = sum + d * d
        p[...] = (d / (np.sqrt(sum) + t(eps))) * t(-clr) + p
        return
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
    **_unused: object,
) -> None:
    t = p.dtype.type
    alpha = float(alpha)
    d = _coupled_grad(p, g, transform, weight_decay)
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
        p[...] = momentum_buffer * t(-float(lr)) + p
    else:
        p[...] = p + (t(-float(lr)) * d) / avg


def _weight_decay(p: np.ndarray, d: np.ndarray, weight_decay: float, decay: float, decoupled: bool) -> np.ndarray:
    """Adam family: decoupled scales p first; coupled adds wd*p to the gradient."""
    t = p.dtype.type
    if weight_decay != 0:
        if decoupled:
            p[...] = p * t(decay)
        else:
            d = p * t(weight_decay) + d
    return d


def _coupled_grad(p: np.ndarray, g: np.ndarray, transform: GradTransform, weight_decay: float) -> np.ndarray:
    """The gradient as the rule sees it: transformed, plus weight_decay * p (torch's coupled decay)."""
    return _weight_decay(p, transform.apply(g), weight_decay, 1.0, False)


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
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    decoupled_weight_decay: bool,
    eps_mode: str = "torch",
    **_unused: object,
) -> None:
    t = p.dtype.type
    tt = float(step + 1)
    beta1, beta2 = float(betas[0]), float(betas[1])
    bc2_sqrt = (1 - beta2**tt) ** 0.5
    hat = eps_mode == "hat"  # epsilon-hat (Keras, TF, scikit-learn): lr_t = lr*sqrt(bc2)/bc1, eps unscaled
    step_size = float(lr) * bc2_sqrt / (1 - beta1**tt) if hat else float(lr) / (1 - beta1**tt)
    decay = _decay(lr, weight_decay, decoupled_weight_decay)
    d = _weight_decay(p, transform.apply(g), weight_decay, decay, decoupled_weight_decay)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    _second_moment(exp_avg_sq, d, beta2)
    v = exp_avg_sq
    if amsgrad:
        assert max_exp_avg_sq is not None
        max_exp_avg_sq[...] = _maximum(max_exp_avg_sq, exp_avg_sq)
        v = max_exp_avg_sq
    denom = np.sqrt(v) + t(eps) if hat else np.sqrt(v) / t(bc2_sqrt) + t(eps)
    p[...] = p + (t(-step_size) * exp_avg) / denom


def sparse_adam(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    **_unused: object,
) -> None:
    """torch's sparse_adam on the rows of a coalesced gradient (run_step gathers them)."""
    t = p.dtype.type
    tt = float(step + 1)
    beta1, beta2 = float(betas[0]), float(betas[1])
    step_size = float(lr) * math.sqrt(1 - beta2**tt) / (1 - beta1**tt)
    d = transform.apply(g)
    exp_avg[...] = exp_avg + (d - exp_avg) * t(1 - beta1)
    exp_avg_sq[...] = exp_avg_sq + (d * d - exp_avg_sq) * t(1 - beta2)
    p[...] = p + t(-step_size) * (exp_avg / (np.sqrt(exp_avg_sq) + t(eps)))


def adamax(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_inf: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    **_unused: object,
) -> None:
    t = p.dtype.type
    beta1, beta2 = float(betas[0]), float(betas[1])
    clr = float(lr) / (1 - beta1 ** float(step + 1))
    d = _weight_decay(p, transform.apply(g), weight_decay, 1.0, False)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    exp_inf[...] = _maximum(exp_inf * t(beta2), np.abs(d) + t(eps))
    p[...] = p + (t(-clr) * exp_avg) / exp_inf


def nadam_mu(beta1: float, momentum_decay: float, t: float) -> float:
    """NAdam's momentum schedule: mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay))."""
    return float(beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay)))


def nadam(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    mu_product: float,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    momentum_decay: float,
    decoupled_weight_decay: bool,
    **_unused: object,
) -> None:
    t = p.dtype.type
    tt = float(step + 1)
    beta1, beta2, lr, psi = float(betas[0]), float(betas[1]), float(lr), float(momentum_decay)
    mu, mu_next = nadam_mu(beta1, psi, tt), nadam_mu(beta1, psi, tt + 1)
    mu_product = float(np.float32(mu_product) * np.float32(mu))  # torch keeps it in float32
    # NumPy scalars: a loaded mu_product that makes a denominator 0 gives inf, as the kernels do.
    grad_coef = np.float64(-lr * (1.0 - mu)) / (1.0 - mu_product)
    avg_coef = np.float64(-lr * mu_next) / (1.0 - mu_product * mu_next)
    decay = _decay(lr, weight_decay, decoupled_weight_decay)
    d = _weight_decay(p, transform.apply(g), weight_decay, decay, decoupled_weight_decay)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    _second_moment(exp_avg_sq, d, beta2)
    denom = np.sqrt(exp_avg_sq / t(1 - beta2**tt)) + t(eps)
    p[...] = p + (t(grad_coef) * d) / denom
    p[...] = p + (t(avg_coef) * exp_avg) / denom


def radam(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    **_unused: object,
) -> None:
    t = p.dtype.type
    tt = float(step + 1)
    beta1, beta2 = float(betas[0]), float(betas[1])
    bc1, bc2 = 1 - beta1**tt, 1 - beta2**tt
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * tt * (beta2**tt) / bc2
    decay = _decay(lr, weight_decay, decoupled_weight_decay)
    d = _weight_decay(p, transform.apply(g), weight_decay, decay, decoupled_weight_decay)
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - beta1)
    _second_moment(exp_avg_sq, d, beta2)
    x = (exp_avg / t(bc1)) * t(lr)
    if rho_t > 5.0:  # variance is tractable: rectified adaptive step
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive = (t(1) / (np.sqrt(exp_avg_sq) + t(eps))) * t(bc2**0.5)
        x = (x * adaptive) * t(rect)
    p[...] = p - x


def lion(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    lr: float,
    betas: tuple[float, float],
    weight_decay: float,
    **_unused: object,
) -> None:
    t = p.dtype.type
    d = transform.apply(g)
    c = _lerp(exp_avg, d, 1.0 - float(betas[0]))
    p[...] = np.sign(c) * t(-float(lr)) + p * t(_decay(lr, weight_decay, True))
    exp_avg[...] = _lerp(exp_avg, d, 1.0 - float(betas[1]))


# ---- torch.optim's remaining element-wise rules (Adadelta, Rprop, ASGD) ----


def adadelta(
    p: np.ndarray,
    g: np.ndarray,
    square_avg: np.ndarray,
    acc_delta: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    **_unused: object,
) -> None:
    t = p.dtype.type
    rho = float(rho)
    d = _coupled_grad(p, g, transform, weight_decay)
    square_avg[...] = (t(1.0 - rho) * d) * d + square_avg * t(rho)
    delta = (np.sqrt(acc_delta + t(eps)) / np.sqrt(square_avg + t(eps))) * d  # eps inside both sqrts
    acc_delta[...] = (t(1.0 - rho) * delta) * delta + acc_delta * t(rho)
    p[...] = delta * t(-float(lr)) + p


# ---- Schedule-Free (the schedulefree package) ----


def _schedule_free_weights(step: int, lr_max: float, weight_sum: float, lr: float, warmup_steps: float, r: float,
                           weight_lr_power: float) -> tuple[float, float]:
    """schedulefree's per-step scalars, its Python arithmetic: (the step's lr, ckp1)."""
    k = step
    sched = (k + 1) / float(warmup_steps) if k < warmup_steps else 1.0
    lr = float(lr) * sched
    lr_max = max(lr, lr_max)
    weight = ((k + 1) ** float(r)) * (lr_max ** float(weight_lr_power))
    weight_sum = weight_sum + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
    return lr, ckp1


def _schedule_free_yz(y: np.ndarray, z: np.ndarray, d: np.ndarray, lr: float, beta1: float, ckp1: float) -> None:
    t = y.dtype.type
    y[...] = d * t(lr * (beta1 * (1 - ckp1) - 1)) + _lerp(y, z, ckp1)
    z[...] = d * t(-lr) + z


def sgd_schedule_free(
    p: np.ndarray,
    g: np.ndarray,
    z: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    fresh: bool,
    lr_max: float,
    weight_sum: float,
    lr: float,
    momentum: float,
    weight_decay: float,
    warmup_steps: float,
    r: float,
    weight_lr_power: float,
    **_unused: object,
) -> None:
    lr_k, ckp1 = _schedule_free_weights(step, lr_max, weight_sum, lr, warmup_steps, r, weight_lr_power)
    if fresh:
        z[...] = p
    d = _coupled_grad(p, g, transform, weight_decay)
    _schedule_free_yz(p, z, d, lr_k, float(momentum), ckp1)


def adamw_schedule_free(
    p: np.ndarray,
    g: np.ndarray,
    z: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    fresh: bool,
    lr_max: float,
    weight_sum: float,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    warmup_steps: float,
    r: float,
    weight_lr_power: float,
    **_unused: object,
) -> None:
    t = p.dtype.type
    beta1, beta2 = float(betas[0]), float(betas[1])
    lr_k, ckp1 = _schedule_free_weights(step, lr_max, weight_sum, lr, warmup_steps, r, weight_lr_power)
    if fresh:
        z[...] = p
    d = transform.apply(g)
    _second_moment(exp_avg_sq, d, beta2)
    d = d / (np.sqrt(exp_avg_sq / t(1 - beta2 ** float(step + 1))) + t(eps))
    if weight_decay != 0:
        d = p * t(weight_decay) + d
    _schedule_free_yz(p, z, d, lr_k, beta1, ckp1)


# ---------------------------------------------------------------------------------------------
# Per-array reductions (LAMB, LARS, Adafactor), in the native passes' summation order: an array
# is cut into chunks fixed by its shape (8192 elements, more when it would make over 256; whole
# rows of each matrix when a pass needs rows), each chunk's float64 terms summed in 32 lanes
# (element i to lane i % 32, each lane in order, lanes combined pairwise), chunks added in order.
# That order is part of the definition (it makes the sums independent of the thread count), so
# the reference follows it to agree bit for bit; everything else here is computed independently.

_CHUNK, _MAX_CHUNKS = 8192, 256


def _chunk_len(n: int) -> int:
    return _CHUNK * max(1, -(-n // (_CHUNK * _MAX_CHUNKS)))


def _row_chunk_rows(rows: int, cols: int) -> int:
    return max(-(-_CHUNK // cols), -(-rows // _MAX_CHUNKS))


def _lane_sum(terms: np.ndarray) -> float:
    """float64 terms (1-D) summed as one run of _row_sums."""
    return float(_row_sums(terms.reshape(1, -1))[0])


def _sum_squares(x: np.ndarray) -> float:
    """sum(x^2) in float64 over element chunks (the order of the native pass)."""
    flat = np.ravel(x, order="K").astype(np.float64)  # memory order, as the native pass reads it
    step = _chunk_len(flat.size)
    total = 0.0
    for lo in range(0, flat.size, step):
        c = flat[lo : lo + step]
        total += _lane_sum(c * c)
    return total


def _norm(x: np.ndarray) -> Any:
    """The 2-norm rounded to x's dtype, as a torch norm tensor holds it."""
    return x.dtype.type(math.sqrt(_sum_squares(x)))


def lamb(
    p: np.ndarray,
    g: np.ndarray,
    exp_avg: np.ndarray,
    exp_avg_sq: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    weight_decouple: bool,
    fixed_decay: bool,
    grad_averaging: bool,
    adam_debias: bool,
    adam: bool,
    max_weight_norm: float,
    **_unused: object,
) -> None:
    t = p.dtype.type
    beta1, beta2, lr, wd = float(betas[0]), float(betas[1]), float(lr), float(weight_decay)
    d = transform.apply(g)
    exp_avg[...] = d * t(1.0 - beta1 if grad_averaging else 1.0) + exp_avg * t(beta1)
    _second_moment(exp_avg_sq, d, beta2)
    if wd != 0 and weight_decouple:
        p[...] = p * t(1.0 - wd * (1.0 if fixed_decay else lr))
    u = exp_avg / (np.sqrt(exp_avg_sq) + t(eps))
    if not weight_decouple and wd > 0:
        u = p * t(wd) + u
    wn = np.minimum(_norm(p), t(max_weight_norm))  # torch.clamp: NaN stays
    pn = _norm(u)
    trust = t(1) if (wn == 0 or pn == 0 or adam) else wn / (pn + t(eps))
    step_size = lr if adam_debias else lr / (1.0 - math.pow(beta1, step + 1))
    p[...] = u * (t(-step_size) * trust) + p
# The wrappers' pass over pairs of arrays (Lookahead, averaging, Schedule-Free's swap): what
# ``_core.blend_`` computes, with torch's rounding (torch.lerp; get_swa_avg_fn's division).


def blend(a: Sequence[np.ndarray], b: Sequence[np.ndarray], weights: float | Sequence[float], op: str) -> None:
    """In place, pair by pair: 'lerp' a = lerp(a, b, w); 'lerp_sync' a = b = lerp(a, b, w);
    'div' a = a + (b - a) / w; 'copy' a = b. A 16-bit `a` (with `b` of its dtype or float32):
    float32 arithmetic, rounded once to a's dtype."""
    ws = list(weights) if isinstance(weights, Sequence) else [weights] * len(a)
    with np.errstate(all="ignore"):
        for x, y, w in zip(a, b, ws, strict=True):
            wide = x.astype(np.float32) if x.dtype.itemsize == 2 else x
            other = y.astype(wide.dtype) if y.dtype != wide.dtype else y
            if op in ("lerp", "lerp_sync"):
                x[...] = _lerp(wide, other, float(w))
                if op == "lerp_sync":
                    y[...] = x
            elif op == "div":
                x[...] = wide + (other - wide) / wide.dtype.type(w)
            elif op == "copy":
                x[...] = y
            else:
                raise ValueError(f"op: unknown {op!r}")

def _torch_sign(x: np.ndarray) -> np.ndarray:
    """torch.sign on CPU: (x > 0) - (x < 0), so sign(NaN) = 0 and sign(-0.0) = +0.0."""
    t = x.dtype.type
    out: np.ndarray = (x > 0).astype(t) - (x < 0).astype(t)
    return out


def rprop(
    p: np.ndarray,
    g: np.ndarray,
    prev: np.ndarray,
    step_size: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    fresh: bool,
    lr: float,
    etas: tuple[float, float],
    step_sizes: tuple[float, float],
    **_unused: object,
) -> None:
    t = p.dtype.type
    etaminus, etaplus = t(etas[0]), t(etas[1])
    d = transform.apply(g)
    s = _torch_sign(d * prev)
    s = np.where(s > 0, etaplus, s)  # torch's three masked assignments, in its order
    s = np.where(s < 0, etaminus, s)
    s = np.where(s == 0, t(1), s)
    old = np.full_like(step_size, t(lr)) if fresh else step_size  # the first step starts from lr
    ss = old * s
    ss = np.where(ss < t(step_sizes[0]), t(step_sizes[0]), ss)  # clamp, NaN kept
    step_size[...] = np.where(ss > t(step_sizes[1]), t(step_sizes[1]), ss)
    d = np.where(s == etaminus, t(0), d)  # a sign flip: no move, and prev = 0
    p[...] = -_torch_sign(d) * step_size + p
    prev[...] = d

def asgd(
    p: np.ndarray,
    g: np.ndarray,
    ax: np.ndarray,
    *,
    transform: GradTransform = _IDENTITY,
    fresh: bool,
    eta: float,
    mu: float,
    lr: float,
    lambd: float,
    weight_decay: float,
    **_unused: object,
) -> None:
    t = p.dtype.type
    if fresh:  # torch's state starts at eta = lr (a float32 tensor) and mu = 1
        eta, mu = float(np.float32(lr)), 1.0
    d = _coupled_grad(p, g, transform, weight_decay)
    p[...] = d * t(-eta) + p * t(1 - float(lambd) * eta)
    ax[...] = ax + (p - ax) * t(mu) if mu != 1 else p
def lars(
    p: np.ndarray,
    g: np.ndarray,
    momentum_buffer: np.ndarray | None,
    *,
    transform: GradTransform = _IDENTITY,
    lr: float,
    weight_decay: float,
    momentum: float,
    dampening: float,
    trust_coefficient: float,
    nesterov: bool,
    **_unused: object,
) -> None:
    t = p.dtype.type
    d = transform.apply(g)
    if p.ndim > 1:  # 0-d and 1-D parameters take plain SGD steps
        pn, gn = _norm(p), _norm(d)
        den = gn + t(weight_decay) * pn
        trust = (t(trust_coefficient) * pn) / den if (pn > 0 and den > 0) else t(1)
        d = (p * t(weight_decay) + d) * trust
    if momentum > 0:
        assert momentum_buffer is not None
        momentum_buffer[...] = d * t(1.0 - float(dampening)) + momentum_buffer * t(momentum)
        d = momentum_buffer * t(momentum) + d if nesterov else momentum_buffer
    p[...] = d * t(-float(lr)) + p



# Native sums of squares (kernels/lane_sum.hpp, Lanes) and dot products (kernels/lane_dot.hpp):
# element i of a run to lane i % 32.
_LANES = 32


def _lanes(x: np.ndarray) -> np.ndarray:
    """Each row's (last axis) terms in 32 lanes, in their dtype: term i to lane i % 32, each lane
    a sequential sum from +0 (Lanes' and lane_dot.hpp's order)."""
    pad = (-x.shape[-1]) % _LANES
    if pad:  # (adding +0 changes no lane: a sum from +0 is never -0)
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], axis=-1)
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1] + (_LANES,), x.dtype)
    # (+ 0: a lane's sum from +0, where its terms are all -0)
    lanes: np.ndarray = np.cumsum(x.reshape(x.shape[:-1] + (-1, _LANES)), axis=-2)[..., -1, :] + x.dtype.type(0)
    return lanes


def _lane_tree(lanes: np.ndarray) -> np.ndarray:
    """The 32 lanes (last axis) added as lane_tree adds them: the four vectors of 8 as
    (0 + 1) + (2 + 3), then ((0+1)+(2+3))+((4+5)+(6+7))."""
    v = (lanes[..., 0:8] + lanes[..., 8:16]) + (lanes[..., 16:24] + lanes[..., 24:32])
    a = [v[..., j] for j in range(8)]
    out: np.ndarray = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    return out


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Each row's (last axis) terms summed in their dtype as Lanes does."""
    return _lane_tree(_lanes(x))


_DOT_CHUNK = 65536  # kernels/lane_dot.hpp, kDotChunk


def lane_dot(x: np.ndarray, y: np.ndarray) -> Any:
    """x . y of two 1-D float32 or float64 arrays, in their dtype, with the native dot's bits
    (_core.lane_dot): the products rounded; in each chunk of 65536, 32 lanes summed from +0; the
    chunks' lanes added in order, then the lanes as a tree. A NumPy scalar; inf and NaN as IEEE
    arithmetic gives them, without warnings (as np.dot and the native dot)."""
    with np.errstate(all="ignore"):
        p = np.multiply(x, y)
        chunks = max(1, -(-p.size // _DOT_CHUNK))
        if chunks > 1:  # (padding adds +0 terms: no lane changes)
            p = np.concatenate([p, np.zeros(chunks * _DOT_CHUNK - p.size, p.dtype)])
        return _lane_tree(np.cumsum(_lanes(p.reshape(chunks, -1)), axis=0)[-1])


def _factored_sums(terms: np.ndarray, rows: int, cols: int) -> tuple[float, np.ndarray, np.ndarray]:
    """A >= 2-D array's float64 terms over chunks of whole rows of each matrix (the native pass's
    order): (the sum of all, each row's sum, each matrix's column sums)."""
    m = terms.reshape(-1, rows, cols)
    step = _row_chunk_rows(rows, cols)
    total = 0.0
    col_sums = np.zeros((m.shape[0], cols))
    for b in range(m.shape[0]):
        for r0 in range(0, rows, step):
            chunk = m[b, r0 : r0 + step]
            total += _lane_sum(chunk.reshape(-1))
            col_sums[b] = col_sums[b] + np.cumsum(chunk, axis=0)[-1]
    return total, _row_sums(m), col_sums


def _machine_epsilon(dtype: Any) -> float:
    """finfo(dtype).eps, bfloat16's too (2**-7: 8 significand bits; NumPy's finfo knows bfloat16
    only with recent ml_dtypes, 0.5 raises)."""
    dt = np.dtype(dtype)
    return 2.0**-7 if dt.name == "bfloat16" else float(np.finfo(dt).eps)


def adafactor(
    p: np.ndarray,
    g: np.ndarray,
    row_var: np.ndarray | None,
    col_var: np.ndarray | None,
    variance: np.ndarray | None,
    *,
    transform: GradTransform = _IDENTITY,
    step: int,
    lr: float,
    beta2_decay: float,
    eps: tuple[float | None, float],
    d: float,
    weight_decay: float,
    group_dtype: Any = None,
    **_unused: object,
) -> None:
    """torch.optim.Adafactor (torch/optim/_adafactor.py, the single-tensor loop). eps1=None: the
    machine epsilon of `group_dtype` (the dtype of the group's first parameter that steps)."""
    t = p.dtype.type
    tt = float(step + 1)
    lr, eps2, d = float(lr), float(eps[1]), float(d)
    eps1 = _machine_epsilon(group_dtype or p.dtype) if eps[0] is None else float(eps[0])
    weight = tt ** float(beta2_decay)
    rho = min(lr, 1 / (tt**0.5))
    grad = transform.apply(g)
    factored = p.ndim >= 2
    if p.size == 0:
        return
    sq = np.asarray(grad, dtype=np.float64) ** 2
    if factored:
        rows, cols = p.shape[-2], p.shape[-1]
        p64 = np.asarray(p, dtype=np.float64)
        p_sum, _, _ = _factored_sums(p64 * p64, rows, cols)
    else:
        p_sum = _sum_squares(p)
    alpha = max(eps2, float(t(math.sqrt(p_sum))) / (p.size**0.5)) * rho
    if weight_decay != 0:
        p[...] = p * t(1 - lr * float(weight_decay))
    if factored:
        assert row_var is not None and col_var is not None
        _, row_sums, col_sums = _factored_sums(sq, rows, cols)
        row_norm = np.sqrt(row_sums).astype(p.dtype).reshape(row_var.shape)
        col_norm = np.sqrt(col_sums).astype(p.dtype).reshape(col_var.shape)
        row_var[...] = _lerp(row_var, (row_norm * row_norm) / t(cols), weight)
        col_var[...] = _lerp(col_var, (col_norm * col_norm) / t(rows), weight)
        r64 = np.asarray(row_var, dtype=np.float64).reshape(-1, rows)
        means = np.array([np.cumsum(r)[-1] / rows for r in r64]).astype(p.dtype).reshape(row_var.shape[:-2] + (1, 1))
        means = np.where(means < t(eps1), t(eps1), means)  # clamp(min=eps1); NaN stays
        var = (row_var * col_var) / means
    else:
        assert variance is not None
        variance[...] = _lerp(variance, grad * grad, weight)
        var = variance
    update = (t(1) / np.sqrt(np.where(var < t(eps1 * eps1), t(eps1 * eps1), var))) * grad
    u64 = np.asarray(update, dtype=np.float64)
    u_sum = _factored_sums(u64 * u64, rows, cols)[0] if factored else _sum_squares(update)
    denom = max(1.0, float(t(math.sqrt(u_sum))) / ((p.size**0.5) * d))
    p[...] = update * t(-alpha / denom) + p


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
    top = float(max(f.max() for f in flat))
    if top == 0 or math.isinf(top):
        return top
    # Bring the largest magnitude into [0.5, 1) by 2^-e, as two factors: the largest float64
    # power of two is 2^1023, a subnormal maximum needs up to 2^1074.
    e = math.frexp(top)[1]
    first = min(max(-e, -1000), 1000)
    s1, s2 = math.ldexp(1.0, first), math.ldexp(1.0, -e - first)
    with np.errstate(over="ignore", under="ignore"):  # a norm past float64's range is inf, as natively
        s = math.fsum(float(np.sum(((f * s1) * s2) ** p)) for f in flat)
        return float(np.ldexp(np.float64(s) ** (1.0 / p), e))


_PLAIN_SUM = (2.0**-900, 2.0**900)  # norm.cpp: a sum of squares between them needs no rescaling


def _norm_sum_squares(pieces: Sequence[np.ndarray]) -> float:
    """The sum of squares of 1-D float64 pieces (one dtype's, in order) as a step's norm pass adds
    them: chunks of a fixed grid over their concatenation, each a Lanes run whose lanes restart at
    every piece (a piece is one array, or one row of a row-sparse gradient, cut at chunk ends),
    the chunks' sums added in order."""
    from . import _core  # (the grid is the native pass's: norm.cpp)

    total = sum(len(x) for x in pieces)
    chunk = _core.norm_chunk_size(total)
    runs: list[list[np.ndarray]] = [[] for _ in range(-(-total // chunk))]
    at = 0
    for x in pieces:
        i = 0
        while i < len(x):
            c = (at + i) // chunk
            part = x[i : i + (c + 1) * chunk - (at + i)]
            runs[c].append(np.concatenate([part * part, np.zeros((-len(part)) % _LANES)]))  # (next piece: lane 0)
            i += len(part)
        at += len(x)
    out = 0.0
    for run in runs:
        out += _lane_sum(np.concatenate(run))
    return out


def step_norm(grads: Sequence[np.ndarray | RowSparse], params: Sequence[np.ndarray],
              coalesced: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[float, float]:
    """(norm, its square as summed) of a step's gradients in one clipping scope, with the bits of
    the native norm pass: per dtype (float32, float64, bfloat16, float16), the gradients in
    parameter order, each in its parameter's memory order (row-sparse: its summed rows, from
    `coalesced` by id where given). A sum of squares past 2^+-900 is rescaled as total_norm does
    (the native pass's rescaled order is its compiler's: equal to about an ulp)."""
    by_dtype: dict[str, list[np.ndarray]] = {}
    dense: list[np.ndarray] = []  # (for the rescaled path)
    for g, p in zip(grads, params):
        if isinstance(g, RowSparse):
            summed = (coalesced[id(g)] if coalesced is not None else coalesce(g))[1]
            rows = summed.astype(np.float64)
            pieces, dtype = list(rows.reshape(len(rows), math.prod(rows.shape[1:]))), summed.dtype
            dense.append(summed)
        else:
            laid = np.empty_like(p, dtype=g.dtype)  # (a gradient in another layout: read as the step's copy)
            laid[...] = g
            pieces, dtype = [np.ravel(laid, order="K").astype(np.float64)], g.dtype
            dense.append(g)
        by_dtype.setdefault(np.dtype(dtype).name, []).extend(pieces)
    squares = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for name in ("float32", "float64", "bfloat16", "float16"):
            if name in by_dtype:
                squares += _norm_sum_squares(by_dtype[name])
    if _PLAIN_SUM[0] < squares < _PLAIN_SUM[1]:
        return math.sqrt(squares), squares
    norm = total_norm(dense)
    return norm, norm * norm


def combined_norm(norms: Sequence[tuple[float, float]]) -> float:
    """The 2-norm of several scopes' (norm, square) pairs as norm.cpp's combined_norm: the squares
    added in order, rescaled by the largest norm where they under- or overflow."""
    squares = 0.0
    for _, sq in norms:
        squares += sq
    top = max((n for n, _ in norms), default=0.0)
    if squares != squares or top == 0.0 or math.isinf(top) or _PLAIN_SUM[0] < squares < _PLAIN_SUM[1]:
        return math.sqrt(squares)
    return math.sqrt(sum((n / top) * (n / top) for n, _ in norms)) * top


def coalesce(g: RowSparse) -> tuple[np.ndarray, np.ndarray]:
    """A row-sparse gradient's distinct rows (in order of first appearance) and their gradients:
    a row given more than once gets the sum of its copies, added in the order given."""
    idx = np.asarray(g.indices, dtype=np.int64)
    uniq, first, inverse = np.unique(idx, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    position = np.empty(len(uniq), dtype=np.int64)
    position[order] = np.arange(len(uniq))
    summed = g.rows[first[order]].copy()
    again = np.ones(len(idx), dtype=bool)
    again[first] = False
    np.add.at(summed, position[inverse.reshape(-1)[again]], g.rows[again])  # in order, one at a time
    return uniq[order], summed


# ---------------------------------------------------------------------------------------------
# A whole step in NumPy (``backend="numpy"``): the native engine checks everything and keeps the
# state and counters, and hands each unit (parameters of one group sharing their counters) here.


def run_step(
    units: Sequence[tuple[int, dict[str, Any], dict[str, Any], list[Any], list[Any], list[Any], list[int]]],
    group_count: int,
    *,
    rule: str,
    max_norm: float | None,
    per_group: bool,
    clip_value: float | None,
    check_finite: bool,
    master_weights: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
    step_count: int = 0,
    grad_norm: tuple[float, bool] | None = None,
    state_dtype: str = "native",
) -> dict[str, Any]:
    """Norm clipping, the non-finite check and every rule update; returns what the native step
    reports: {grad_norm, group_norms, aborted} (aborted: nothing was written). `grad_norm`: a
    global norm computed elsewhere (a sharded step's), used instead of computing one."""
    result: dict[str, Any] = {"grad_norm": None, "group_norms": [], "aborted": False}
    coef: dict[int, float] = {}
    # Row-sparse gradients: the update runs on their distinct rows, gathered and scattered back.
    rows_of = {id(g): coalesce(g) for unit in units for g in unit[4] if isinstance(g, RowSparse)}
    if max_norm is not None or check_finite:
        scopes: dict[int, list[tuple[int, Any, np.ndarray]]] = {}  # (parameter index, grad, param)
        for group, _, _, params, grads, _, tags in units:
            scopes.setdefault(group if per_group else 0, []).extend(zip(tags, grads, params))
        count = group_count if per_group else 1
        pairs = []
        for i in range(count):
            scope = sorted(scopes.get(i, []), key=lambda item: item[0])  # (units group by counters)
            pairs.append((grad_norm[0], grad_norm[0] * grad_norm[0]) if grad_norm else
                         step_norm([g for _, g, _ in scope], [p for _, _, p in scope], rows_of))
        norms = [n for n, _ in pairs]
        result["grad_norm"] = norms[0] if count == 1 else combined_norm(pairs)
        if per_group:
            result["group_norms"] = norms
        if check_finite and any(not math.isfinite(n) for n in norms):
            result["aborted"] = True
            return result
        if max_norm is not None:
            for i, n in enumerate(norms):
                c = max_norm / (n + 1e-6)  # torch: clamp(max_norm / (norm + 1e-6), max=1)
                coef[i] = c if (c < 1.0 or c != c) else 1.0
    update = globals()[rule]
    # Per group, the dtype of its first parameter that steps (torch's Adafactor takes eps1=None
    # as that dtype's machine epsilon for the whole group).
    first: dict[int, tuple[int, Any]] = {}
    for group, _, _, params, _, _, tags in units:
        for tag, p in zip(tags, params):
            if group not in first or tag < first[group][0]:
                first[group] = (tag, p.dtype)
    with np.errstate(all="ignore"):  # NaN/Inf propagate silently, as in torch and the kernels
        for group, hp, counters, params, grads, slots, tags in units:
            scale = (-1.0 if hp.get("maximize") else 1.0) * coef.get(group if per_group else 0, 1.0)
            transform = GradTransform(scale, -clip_value, clip_value) if clip_value is not None else GradTransform(scale)
            kw = {"transform": transform, "group_dtype": first[group][1], **counters, **hp}
            for i, (p, g) in enumerate(zip(params, grads)):
                arrays = [None if lst is None else lst[i] for lst in slots]
                if state_dtype != "native":
                    key = rounding_key(seed, step_count, tags[i])
                    _compressed_update(update, rule, p, g, arrays, state_dtype, master_weights,
                                       stochastic_rounding, key, transform=transform, **counters, **hp)
                    continue
                if master_weights:  # the last slot: the float32 master copy (16-bit parameters)
                    master = arrays.pop()
                if isinstance(g, RowSparse):  # (float32/float64 parameters only)
                    rows, summed = rows_of[id(g)]
                    touched = [None if a is None else a[rows] for a in [p, *arrays]]
                    update(touched[0], summed, *touched[1:], **kw)
                    for a, r in zip([p, *arrays], touched):
                        if a is not None:
                            a[rows] = r
                elif p.dtype.itemsize == 2:  # bfloat16, float16: float32 arithmetic, one rounding
                    wide = master if master_weights and master is not None else p.astype(np.float32)
                    update(wide, g.astype(np.float32), *arrays, **kw)
                    if stochastic_rounding:
                        p[...] = round_stochastic(wide, p.dtype, rounding_key(seed, step_count, tags[i]))
                    else:
                        p[...] = wide.astype(p.dtype)
                else:
                    update(p, g, *arrays, **kw)
    return result


def _compressed_update(update: Any, rule: str, p: np.ndarray, g: np.ndarray, arrays: list[Any], storage: str,
                       master_weights: bool, stochastic_rounding: bool, key: int, **kwargs: Any) -> None:
    """One parameter's update with compressed state (docs/compressed_state.md): the stored state
    read as float32, the rule in float32 on every array as 1-D in memory order, then each stored
    value rounded once (parameter as without compression; bfloat16 state stochastically; int8
    state to its blocks' codes)."""
    from . import _core

    codecs = _core.rule_info(rule)["slot_codecs"]
    count = len(codecs)
    master = arrays[count] if master_weights and p.dtype.itemsize == 2 else None
    scales = arrays[count + int(master_weights):] if storage == "int8" else [None] * count
    p_flat = compressed_state.memory_view(p)
    g_in_layout = np.empty_like(p)
    g_in_layout[...] = g
    g_flat = compressed_state.memory_view(g_in_layout).astype(np.float32)
    if master is not None:
        wide = compressed_state.memory_view(master)
    elif p.dtype.itemsize == 2:
        wide = p_flat.astype(np.float32)
    else:
        wide = p_flat
    stored = [None if a is None else [a] if s is None else [a, s] for a, s in zip(arrays[:count], scales)]
    state = [None if s is None else compressed_state.decode(s, storage, c != "nonnegative") for s, c in zip(stored, codecs)]
    update(wide, g_flat, *state, **kwargs)
    used = [k for k, v in enumerate(state) if v is not None]
    if storage == "bfloat16":  # stochastic rounding, two arrays per hash (compressed_state.round_state)
        rounded = compressed_state.round_state([state[k] for k in used], key)  # type: ignore[misc]
        for k, r in zip(used, rounded):
            state[k] = r
    for k in used:
        compressed_state.store(state[k], stored[k], storage, codecs[k] != "nonnegative")  # type: ignore[arg-type]
    if p.dtype.itemsize == 2:
        p_flat[...] = round_stochastic(wide, p.dtype, key) if stochastic_rounding else wide.astype(p.dtype)


# ---------------------------------------------------------------------------------------------
# bfloat16 / float16 parameters (docs/low_precision.md): float32 arithmetic, one rounding of the
# stored value, to nearest even or (stochastic_rounding) up with the probability of the dropped
# fraction, from counter-based random bits: the same hashes as kernels/low_precision.hpp.

_M64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def rounding_key(seed: int, step_count: int, param: int) -> int:
    """The 32-bit key of a parameter's random bits at a step."""
    return (_splitmix64(_splitmix64(_splitmix64(seed) ^ step_count) ^ param) >> 32) | 1


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    out: np.ndarray = x ^ (x >> np.uint32(16))
    return out


def round_stochastic(x: np.ndarray, dtype: Any, key: int) -> np.ndarray:
    """float32 `x` rounded to bfloat16 or float16 with random bits hash(key, flat index)."""
    u = np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)
    r = _mix32(np.uint32(key) ^ _mix32(np.arange(u.size, dtype=np.uint32)))
    if np.dtype(dtype) != np.dtype(np.float16):  # bfloat16
        return bfloat16_stochastic(x.reshape(-1), r, dtype).reshape(x.shape)
    mag, sign = u & np.uint32(0x7FFFFFFF), u & np.uint32(0x80000000)
    e = (mag >> np.uint32(23)).astype(np.int64) - 127
    k = np.where(e < -14, 13 + (-14 - e), 13).clip(max=23).astype(np.uint32)
    mask = (np.uint32(1) << k) - np.uint32(1)
    wide = (sign | ((mag + (r & mask)) & ~mask)).view(np.float32)
    with np.errstate(over="ignore"):
        bits = wide.astype(np.float16).view(np.uint16)
    tiny = e < -24  # 0 or 2^-24, with probability |x| / 2^-24
    up = (r >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24) < mag.view(np.float32) * np.float32(2.0**24)
    bits = np.where(tiny, (sign >> np.uint32(16)).astype(np.uint16) | up.astype(np.uint16), bits)
    special = mag >= np.uint32(0x7F800000)  # inf, NaN: to nearest
    bits = np.where(special, x.reshape(-1).astype(dtype).view(np.uint16), bits)
    out: np.ndarray = bits.view(dtype).reshape(x.shape)
    return out


def bfloat16_stochastic(x: np.ndarray, r: np.ndarray, dtype: Any) -> np.ndarray:
    """1-D float32 `x` rounded to bfloat16 up with the probability of the dropped fraction, from
    the low 16 bits of `r` (one uint32 per element); inf and NaN to nearest."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    special = (u & np.uint32(0x7FFFFFFF)) >= np.uint32(0x7F800000)
    bits = ((u + (r & np.uint32(0xFFFF))) >> np.uint32(16)).astype(np.uint16)
    out: np.ndarray = np.where(special, x.astype(dtype).view(np.uint16), bits).view(dtype)
    return out


def muon(
    p: np.ndarray,
    g: np.ndarray,
    momentum_buffer: np.ndarray,
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool,
    ns_coefficients: tuple[float, float, float],
    eps: float,
    ns_steps: int,
    adjust_lr_fn: str | None,
    ns_dtype: str = "bfloat16",
    **_unused: object,
) -> None:
    """torch.optim.Muon's step for one 2-D parameter (momentum_buffer starts at zeros). A 16-bit
    parameter: each of torch's element-wise ops in float32, its result rounded to the
    parameter's dtype."""
    from .optim._newton_schulz import orthogonalize  # the Newton-Schulz iteration itself

    A, B = p.shape
    ratio = math.sqrt(max(1, A / B)) if adjust_lr_fn in (None, "original") else 0.2 * math.sqrt(max(A, B))
    wide = np.dtype(np.float32) if p.itemsize == 2 else p.dtype
    momentum_buffer[...] = _lerp(momentum_buffer.astype(wide), g.astype(wide), 1 - float(momentum))
    u = _lerp(g.astype(wide), momentum_buffer.astype(wide), float(momentum)).astype(p.dtype) if nesterov else momentum_buffer
    o = orthogonalize(u, ns_coefficients, ns_steps, eps, ns_dtype).astype(p.dtype)
    p[...] = p.astype(wide) * wide.type(1 - float(lr) * float(weight_decay))
    # add_'s alpha in O's dtype: the parameter's, but a float16 parameter's O is bfloat16 in
    # torch, so its add runs in float32
    alpha = -float(lr) * ratio
    p[...] = o.astype(wide) * wide.type(alpha if p.dtype == np.float16 else p.dtype.type(alpha)) + p.astype(wide)
