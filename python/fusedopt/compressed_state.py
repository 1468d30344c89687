"""Compressed optimizer state in NumPy (``state_dtype="bfloat16"`` or ``"int8"``,
docs/compressed_state.md): how stored state reads as float32 and how float32 values are stored.

The same bits as the native kernels (``kernels/quantize.hpp``, ``kernels/low_precision.hpp``),
computed independently: the NumPy reference steps with these, and ``load_state_dict`` converts
saved state between storages with them.

int8 state is block-wise dynamic quantization (Dettmers et al., "8-bit Optimizers via Block-wise
Quantization", 2022): per block of 256 elements (in memory order), a float32 scale (the block's
largest magnitude) and one byte per element, the code of the dynamic tree map's value nearest to
``x / absmax``. Signed state uses a sign bit and 7 bits of magnitude; non-negative state (second
moments) 8 bits of magnitude, so values 10^6 times below their block's largest keep a nonzero
code. Both maps hold 1: a block's largest value is stored exactly.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

BLOCK = 256
_POWERS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # decade i holds values in [10^(i-7), 10^(i-6))


class _Map:
    """One code book (bitsandbytes' create_dynamic_map) and its quantizer's float32 constants."""

    def __init__(self, signed: bool) -> None:
        self.signed = signed
        value = np.zeros(256, np.float64)
        scale, offset, base, end = [], [], [], []
        code = 1
        for i, power in enumerate(_POWERS):
            n = (2**i if i + 1 < len(_POWERS) else 63) if signed else 2 ** (i + 1)
            step = 0.9 / n
            base.append(code)
            end.append(code + n - 1)
            scale.append(1.0 / (power * step))
            offset.append(0.1 / step - code)
            value[code : code + n] = [power * (0.1 + (j + 0.5) * step) for j in range(n)]
            code += n
        v32 = value.astype(np.float32)
        self.top = 127 if signed else 255  # the value 1
        v32[self.top] = 1.0
        if signed:
            v32[129:] = -v32[1:128]
        self.value = v32
        self.zero = np.float32(0.5 * float(v32[1]))
        self.above = np.array([0.5 * (float(v32[b - 1]) + float(v32[b])) for b in base[1:]], np.float32)
        # in decade i, the code of a is min(trunc(a * scale - offset), end) (kernels/quantize.hpp)
        self.scale = np.array(scale, np.float32)
        self.offset = np.array(offset, np.float32)
        self.end = np.array(end, np.int32)
        self.one = np.float32(0.5 * (float(v32[self.top - 1]) + 1.0))


@cache
def code_book(signed: bool) -> _Map:
    return _Map(signed)


def memory_view(x: np.ndarray) -> np.ndarray:
    """A dense array's elements as a 1-D view in memory order (the order the kernels walk)."""
    flat = np.ravel(x, order="K")
    if x.size and not np.shares_memory(flat, x):
        raise ValueError("memory_view: the array is not dense")
    return flat


def quantize(x: np.ndarray, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """1-D float32 values -> (uint8 codes, float32 scales of its blocks of BLOCK)."""
    q = code_book(signed)
    n = x.size
    padded = np.zeros(-(-n // BLOCK) * BLOCK, np.float32)
    padded[:n] = x
    rows = padded.reshape(-1, BLOCK)
    mag = np.abs(rows)
    with np.errstate(all="ignore"):
        absmax = mag.max(axis=1)  # NaN when the block holds one
        ok = (absmax > 0) & (absmax <= np.finfo(np.float32).max)
        inv = np.where(ok, np.float32(1) / np.where(ok, absmax, np.float32(1)), np.float32(0)).astype(np.float32)
        a = mag * inv[:, None]
    a = np.where(a == a, a, np.float32(0))
    decade = np.searchsorted(q.above, a, side="right")  # how many thresholds a reaches
    with np.errstate(all="ignore"):
        t = a * q.scale[decade] - q.offset[decade]
    c = np.minimum(t.astype(np.int32), q.end[decade])
    code = np.where(a < q.zero, 0, np.where(a >= q.one, q.top, c))
    if signed:
        code = np.where((code != 0) & (rows < 0), code | 128, code)
    return code.reshape(-1)[:n].astype(np.uint8), absmax.astype(np.float32)


def dequantize(codes: np.ndarray, absmax: np.ndarray, signed: bool) -> np.ndarray:
    """1-D uint8 codes and their blocks' float32 scales -> 1-D float32 values."""
    scale = np.repeat(np.asarray(absmax, np.float32), BLOCK)[: codes.size]
    with np.errstate(invalid="ignore"):  # (a non-finite block: 0 * inf)
        out: np.ndarray = code_book(signed).value[codes] * scale
    return out


def _reference() -> Any:
    from . import reference  # (imports this module)

    return reference


def _mix(x: Any) -> Any:
    return _reference()._mix32(np.asarray(x, np.uint32))


def round_state(values: list[np.ndarray], key: int) -> list[np.ndarray]:
    """bfloat16 state arrays (1-D float32, in operand order) stochastically rounded as the kernels
    do (kernels/low_precision.hpp, narrow_state_pair): in pairs, one hash per element giving
    the first array of a pair its low 16 random bits and the second its high 16."""
    out = []
    pair_key = int(_mix(key))
    for first in range(0, len(values), 2):
        pair = values[first : first + 2]
        r = _mix(np.uint32(pair_key) + np.uint32(0x9E3779B9) * np.arange(pair[0].size, dtype=np.uint32))
        for half, x in enumerate(pair):
            out.append(_reference().bfloat16_stochastic(x, r >> np.uint32(16 * half), bfloat16()))
        pair_key = int(_mix(pair_key))
    return out


def decode(arrays: list[np.ndarray], storage: str, signed: bool) -> np.ndarray:
    """The float32 values stored state means, 1-D in memory order (exact: a stored value is a
    float32 number). `arrays`: [the bfloat16 array] or [codes, block scales]."""
    if storage == "int8":
        return dequantize(memory_view(arrays[0]), arrays[1], signed)
    return memory_view(arrays[0]).astype(np.float32)


def store(values: np.ndarray, arrays: list[np.ndarray], storage: str, signed: bool) -> None:
    """Writes 1-D float32 `values` into stored state: bfloat16 (already rounded: `round_state`),
    or int8 codes and their block scales."""
    if storage == "int8":
        codes, absmax = quantize(values, signed)
        memory_view(arrays[0])[...] = codes
        arrays[1][...] = absmax
        return
    memory_view(arrays[0])[...] = values


def bfloat16() -> Any:
    import ml_dtypes

    return ml_dtypes.bfloat16


# ---- state_dict: which storage saved state is in, and conversion between storages -------------


def numpy_dtype(name: str) -> np.dtype[Any]:
    """The NumPy dtype of a slot's dtype name as the engine reports it."""
    return np.dtype(bfloat16()) if name == "bfloat16" else np.dtype(name)


def storage_of(name: str, st: Any) -> str:
    """How a saved slot is stored: "int8" (uint8 codes with "<name>_absmax" beside them),
    "bfloat16", or "float"."""
    value = np.asarray(st[name])
    if value.dtype == np.uint8 and f"{name}_absmax" in st:
        return "int8"
    return "bfloat16" if value.dtype.name == "bfloat16" else "float"


def read_saved(name: str, st: Any, p: np.ndarray, what: str, signed: bool) -> np.ndarray:
    """A saved slot's values as float32 in the parameter's shape (ValueError for a bad shape)."""
    value = np.asarray(st[name])
    if value.shape != p.shape:
        raise ValueError(f"{what} has shape {value.shape}, the parameter has {p.shape}")
    if storage_of(name, st) != "int8":
        return value.astype(np.float32)
    codes = np.empty_like(p, dtype=np.uint8)  # blocks run over the parameter's memory order
    codes[...] = value
    absmax = np.asarray(st[f"{name}_absmax"], np.float32)
    if absmax.shape != (-(-p.size // BLOCK),):
        raise ValueError(f"{what}: '{name}_absmax' has shape {absmax.shape}, expected ({-(-p.size // BLOCK)},)")
    out = np.empty_like(p, dtype=np.float32)
    memory_view(out)[...] = dequantize(memory_view(codes), absmax, signed)
    return out


def encode_like(p: np.ndarray, values: np.ndarray, name: str, storage: str | None, signed: bool) -> dict[str, Any]:
    """A slot's state entries for float `values` (the parameter's shape) in `storage` (None: as
    floats), laid out like the parameter; bfloat16 rounds to nearest even."""
    if storage is None:
        return {name: values}
    if storage == "bfloat16":
        out = np.empty_like(p, dtype=bfloat16())
        out[...] = values
        return {name: out}
    wide = np.empty_like(p, dtype=np.float32)
    wide[...] = values
    flat, absmax = quantize(memory_view(wide), signed)
    codes = np.empty_like(p, dtype=np.uint8)
    memory_view(codes)[...] = flat
    return {name: codes, f"{name}_absmax": absmax}
