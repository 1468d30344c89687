"""Gradient clipping with torch.nn.utils semantics: one native float64 norm pass over every
array (SIMD, threaded, bitwise independent of the thread count), then an in-place scale.

Inside an optimizer prefer ``max_grad_norm=`` / ``clip_value=``: the scale is folded into the
update kernel, the gradients are only read, and the caller's arrays stay untouched.

float32, float64, bfloat16 (ml_dtypes) and float16 gradients, mixed in one list: a 16-bit array
is read exactly (float64 accumulation as for the others) and scaled or clamped in float32, each
result rounded once to its dtype, as torch's ``mul_`` and ``clamp_`` on such tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _checks, _core

GradList = Sequence["np.ndarray | None"] | Mapping[str, "np.ndarray | None"] | np.ndarray


def _as_list(grads: Any) -> list[np.ndarray]:
    if isinstance(grads, np.ndarray):
        return [grads]
    if isinstance(grads, Mapping):
        return [g for g in grads.values() if g is not None]
    if isinstance(grads, (str, bytes)) or not hasattr(grads, "__iter__"):
        raise TypeError(f"grads: expected a list or dict of arrays, got {type(grads).__name__}")
    return [g for g in grads if g is not None]


def _check_norm_type(norm_type: Any) -> float:
    p = _checks.real(norm_type, "norm_type")
    if not (p >= 0 or p == -math.inf):
        raise ValueError(f"norm_type: must be >= 0, inf or -inf, got {norm_type!r}")
    return p


def _nonfinite_error(p: float) -> RuntimeError:
    return RuntimeError(
        f"The total norm of order {p} for gradients is non-finite, so it cannot be clipped. "
        "To disable this error and scale the gradients by the non-finite norm anyway, "
        "set `error_if_nonfinite=False`"
    )


def get_total_norm(grads: GradList, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    """The norm_type-norm of all gradients together, as if concatenated into one vector.

    float64 accumulation (also for float32 gradients), scaled so that values near the float
    overflow or underflow thresholds give the correctly rounded answer. An empty list gives 0.
    ``inf`` is max |g|, ``-inf`` min |g|. NaN anywhere gives NaN. ``norm_type=0`` follows
    torch's norm-of-norms quirk: it counts the *arrays* holding any nonzero (or NaN) element,
    not the elements.
    """
    p = _check_norm_type(norm_type)
    error_if_nonfinite = _checks.flag(error_if_nonfinite, "error_if_nonfinite")
    arrays = _as_list(grads)
    if p == 0:
        for i, a in enumerate(arrays):
            _core.check_array(a, f"grads[{i}]", written=False, low_precision=True, dense=True)
        norm = float(sum(1 for a in arrays if np.any(a != 0)))
    else:
        norm, _ = _core.total_norm(arrays, p)
    if error_if_nonfinite and not math.isfinite(norm):
        raise _nonfinite_error(p)
    return norm


def clip_grads_with_norm_(grads: GradList, max_norm: float, total_norm: float) -> None:
    """Scale every gradient in place by ``min(1, max_norm / (total_norm + 1e-6))``.

    As in torch: no lower clamp, so max_norm=0 zeroes the gradients and an infinite norm gives
    0 (NaN where a gradient was infinite). A coefficient of exactly 1 leaves the bits unchanged,
    so that pass is skipped.
    """
    max_norm = _checks.nonnegative(max_norm, "max_norm")
    total_norm = _checks.real(total_norm, "total_norm")
    if total_norm < 0:
        raise ValueError(f"total_norm: must be >= 0 (a norm) or NaN, got {total_norm!r}")
    arrays = _as_list(grads)
    coef = max_norm / (total_norm + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        _core.scale_(arrays, coef)


def clip_grad_norm_(
    grads: GradList, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Clip the gradients' total norm to ``max_norm`` in place; returns the norm before clipping
    (torch.nn.utils.clip_grad_norm_). Raises RuntimeError, modifying nothing, when
    ``error_if_nonfinite`` and the norm is NaN or infinite."""
    max_norm = _checks.nonnegative(max_norm, "max_norm")
    arrays = _as_list(grads)
    norm = get_total_norm(arrays, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(arrays, max_norm, norm)
    return norm


def clip_grad_value_(grads: GradList, clip_value: float) -> None:
    """Clamp every gradient in place to [-clip_value, clip_value] (NaN stays NaN)."""
    c = _checks.nonnegative(clip_value, "clip_value")
    _core.clamp_(_as_list(grads), -c, c)
