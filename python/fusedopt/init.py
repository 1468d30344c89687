"""Weight initialisation for NumPy arrays, following ``torch.nn.init``.

Every initialiser fills a floating-point NumPy array **in place** from a
:class:`numpy.random.Generator` and returns the same array, so it can be used
on a parameter that an optimizer already holds::

    import numpy as np
    import fusedopt.init as init

    rng = np.random.default_rng(0)
    W1 = np.empty((64, 784))                      # (out_features, in_features)
    init.kaiming_normal(W1, nonlinearity="relu", rng=rng)
    W2 = np.empty((10, 64), dtype=np.float32)
    init.xavier_uniform(W2, gain=init.calculate_gain("tanh"), rng=rng)

Shape conventions are torch's: a 2-D weight is ``(fan_out, fan_in)`` (the
layer computes ``x @ W.T``) and a convolution kernel is
``(out_channels, in_channels, *kernel_size)``, whose fans are multiplied by
the receptive-field size. If your layer computes ``x @ W`` with ``W`` of shape
``(fan_in, fan_out)``, pass ``W.T`` (a view, so it is still filled in place) or
use ``mode="fan_out"``.

=====================  =====================================================
initialiser            distribution
=====================  =====================================================
``xavier_uniform``     U(-a, a),  a = gain * sqrt(6 / (fan_in + fan_out))
``xavier_normal``      N(0, std²), std = gain * sqrt(2 / (fan_in + fan_out))
``kaiming_uniform``    U(-b, b),  b = gain * sqrt(3 / fan)
``kaiming_normal``     N(0, std²), std = gain / sqrt(fan)
=====================  =====================================================

``fan`` is ``fan_in`` (default; preserves the forward activations' variance)
or ``fan_out`` (preserves the backward gradients' variance), and ``gain`` is
:func:`calculate_gain` of the nonlinearity that follows the layer.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Union

import numpy as np

__all__ = [
    "calculate_gain",
    "fan_in_and_fan_out",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
]

RngLike = Union[np.random.Generator, int, None]

_LINEAR = (
    "linear",
    "identity",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
_NONLINEARITIES = _LINEAR + ("tanh", "relu", "leaky_relu", "selu")
_MODES = ("fan_in", "fan_out")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    ============================  ==========================================
    nonlinearity                  gain
    ============================  ==========================================
    linear / identity / conv* /   1
    sigmoid
    tanh                          5/3
    relu                          sqrt(2)
    leaky_relu                    sqrt(2 / (1 + negative_slope²)),
                                  ``param`` is the slope (default 0.01)
    selu                          3/4
    ============================  ==========================================

    Raises ``ValueError`` (naming ``nonlinearity`` or ``param``) for an unknown
    name or a non-numeric slope.
    """
    if not isinstance(nonlinearity, str):
        raise ValueError(
            f"nonlinearity must be one of {', '.join(_NONLINEARITIES)}; "
            f"got {nonlinearity!r}"
        )
    name = nonlinearity.lower()
    if name in _LINEAR:
        return 1.0
    if name == "tanh":
        return 5.0 / 3.0
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
            if not math.isfinite(slope):
                raise ValueError(
                    f"param (leaky_relu negative_slope) must be finite; got {param!r}"
                )
        else:
            raise ValueError(
                f"param (leaky_relu negative_slope) must be a number; got {param!r}"
            )
        return math.sqrt(2.0 / (1.0 + slope * slope))
    if name == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"nonlinearity must be one of {', '.join(_NONLINEARITIES)}; got {nonlinearity!r}"
    )


def fan_in_and_fan_out(shape: Sequence[int] | np.ndarray) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, with torch's conventions.

    ``shape`` is a tuple of ints or an array (its ``.shape`` is used). For
    ``(out, in)`` the fans are ``(in, out)``; for a convolution kernel
    ``(out, in, k1, k2, ...)`` both are multiplied by ``k1 * k2 * ...``.
    Fewer than 2 dimensions raises ``ValueError``.
    """
    if isinstance(shape, np.ndarray):
        dims = shape.shape
    else:
        try:
            dims = tuple(operator.index(s) for s in shape)
        except TypeError:
            raise TypeError(
                f"shape must be an array or a sequence of ints; got {shape!r}"
            ) from None
    if len(dims) < 2:
        raise ValueError(
            "shape must have at least 2 dimensions to define fan_in and fan_out; "
            f"got shape {tuple(dims)}"
        )
    receptive_field = 1
    for s in dims[2:]:
        receptive_field *= int(s)
    return int(dims[1]) * receptive_field, int(dims[0]) * receptive_field


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _check_array(array: object, name: str = "array") -> np.ndarray:
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray of floats; got {type(array).__name__}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{name} must have a floating dtype (float16/float32/float64) to be "
            f"initialised in place; got dtype {array.dtype}"
        )
    if not array.flags.writeable:
        raise ValueError(f"{name} is read-only; it must be writeable to fill in place")
    return array


def _rng(rng: RngLike) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(
        "rng must be a numpy.random.Generator, an int seed or None; "
        f"got {type(rng).__name__}"
    )


def _gain(gain: float | str) -> float:
    if isinstance(gain, str):
        return calculate_gain(gain)
    if isinstance(gain, bool) or not isinstance(gain, numbers.Real):
        raise TypeError(f"gain must be a number or a nonlinearity name; got {gain!r}")
    value = float(gain)
    if not math.isfinite(value):
        raise ValueError(f"gain must be finite; got {gain!r}")
    return value


def _fan(array: np.ndarray, mode: str) -> int:
    if not isinstance(mode, str) or mode.lower() not in _MODES:
        raise ValueError(f"mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(array.shape)
    return fan_in if mode.lower() == "fan_in" else fan_out


def _fill_uniform(array: np.ndarray, bound: float, gen: np.random.Generator) -> np.ndarray:
    array[...] = gen.uniform(-bound, bound, size=array.shape)
    return array


def _fill_normal(array: np.ndarray, std: float, gen: np.random.Generator) -> np.ndarray:
    array[...] = gen.normal(0.0, std, size=array.shape)
    return array


# --------------------------------------------------------------------------- #
# initialisers
# --------------------------------------------------------------------------- #
def xavier_uniform(
    array: np.ndarray, gain: float | str = 1.0, rng: RngLike = None
) -> np.ndarray:
    """Glorot/Xavier uniform: ``U(-a, a)``, ``a = gain*sqrt(6/(fan_in+fan_out))``.

    ``gain`` may be a number or a nonlinearity name (passed to
    :func:`calculate_gain`). ``rng``: a ``numpy.random.Generator`` (or an int
    seed; ``None`` draws fresh OS entropy). Fills ``array`` in place and
    returns it.
    """
    _check_array(array)
    g = _gain(gain)
    gen = _rng(rng)
    fan_in, fan_out = fan_in_and_fan_out(array.shape)
    if array.size == 0:
        return array
    std = g * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill_uniform(array, math.sqrt(3.0) * std, gen)


def xavier_normal(
    array: np.ndarray, gain: float | str = 1.0, rng: RngLike = None
) -> np.ndarray:
    """Glorot/Xavier normal: ``N(0, std²)``, ``std = gain*sqrt(2/(fan_in+fan_out))``.

    Arguments as :func:`xavier_uniform`. Fills ``array`` in place and returns it.
    """
    _check_array(array)
    g = _gain(gain)
    gen = _rng(rng)
    fan_in, fan_out = fan_in_and_fan_out(array.shape)
    if array.size == 0:
        return array
    return _fill_normal(array, g * math.sqrt(2.0 / (fan_in + fan_out)), gen)


def kaiming_uniform(
    array: np.ndarray,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: RngLike = None,
) -> np.ndarray:
    """He/Kaiming uniform: ``U(-b, b)``, ``b = gain*sqrt(3/fan)``.

    ``a`` is the negative slope of a following leaky ReLU (used only when
    ``nonlinearity="leaky_relu"``, torch's default; ``a=0`` gives the ReLU
    gain sqrt(2)). ``mode`` is ``"fan_in"`` or ``"fan_out"``. Fills ``array``
    in place and returns it.
    """
    _check_array(array)
    gain = calculate_gain(nonlinearity, a)
    gen = _rng(rng)
    fan = _fan(array, mode)
    if array.size == 0:
        return array
    std = gain / math.sqrt(fan)
    return _fill_uniform(array, math.sqrt(3.0) * std, gen)


def kaiming_normal(
    array: np.ndarray,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: RngLike = None,
) -> np.ndarray:
    """He/Kaiming normal: ``N(0, std²)``, ``std = gain/sqrt(fan)``.

    Arguments as :func:`kaiming_uniform`. Fills ``array`` in place and returns it.
    """
    _check_array(array)
    gain = calculate_gain(nonlinearity, a)
    gen = _rng(rng)
    fan = _fan(array, mode)
    if array.size == 0:
        return array
    return _fill_normal(array, gain / math.sqrt(fan), gen)
