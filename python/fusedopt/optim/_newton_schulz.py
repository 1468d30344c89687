"""Muon's Newton-Schulz orthogonalization (torch/optim/_muon.py ``_zeropower_via_newtonschulz``)
on NumPy's BLAS, in torch's bfloat16 or in float32.

torch runs it on bfloat16 tensors: each op (norm, divide, matmul, addmm) computes in float32 and
rounds its result to bfloat16 once. Here every op is the same float32 computation (NumPy's
float32 matmul, whose BLAS also accumulates in float32) followed by the same rounding to
bfloat16 (round to nearest, ties to even), with the values kept in float32 arrays, so no
bfloat16 type is needed. What is left is the order of the float32 sums inside each matrix
product (oneDNN versus OpenBLAS), which moves a result to the neighbouring bfloat16 value in
about 1 element in 60,000 per product; later iterations spread such a one-ulp difference.
"""

from __future__ import annotations

import numpy as np

NS_DTYPES = ("bfloat16", "float32")


def round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bfloat16 value (ties to even), as float32; NaN stays NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    rounded = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(x), x, rounded)


def _keep(x: np.ndarray) -> np.ndarray:
    return x


def orthogonalize(
    update: np.ndarray, coefficients: tuple[float, float, float], steps: int, eps: float, dtype: str = "bfloat16"
) -> np.ndarray:
    """``steps`` quintic Newton-Schulz iterations on a 2-D update: a float32 array (holding
    bfloat16 values when ``dtype="bfloat16"``), of the update's shape."""
    a, b, c = (np.float32(v) for v in coefficients)
    r = round_bf16 if dtype == "bfloat16" else _keep
    # torch: grad.bfloat16() (a float64 tensor goes through float32 first, as c10::BFloat16 does)
    x = r(np.asarray(update, dtype=np.float32))
    transposed = update.shape[0] > update.shape[1]
    if transposed:
        x = np.ascontiguousarray(x.T)
    norm = r(np.asarray(np.linalg.norm(x), dtype=np.float32))
    norm = np.maximum(norm, r(np.asarray(eps, dtype=np.float32)))
    x = r(x / norm)
    for _ in range(steps):
        gram = r(x @ x.T)
        gram_update = r(b * gram + c * (gram @ gram))  # torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = r(a * x + gram_update @ x)  # torch.addmm(x, gram_update, x, beta=a)
    return np.ascontiguousarray(x.T) if transposed else x
