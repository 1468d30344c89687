"""Divisions by a constant of the step (a bias correction) that avoid the divider, and must
still give the correctly rounded quotient (kernels/element_math.hpp):

- Adam's sqrt(v) / sqrt(1 - beta2^t), by multiply-adds on the FMA targets
  (``QuotientByConstant``);
- NAdam's and Schedule-Free AdamW's v / (1 - beta2^t) and RAdam's m / (1 - beta1^t), for float32,
  as a float64 product rounded once (``DivideByConstant``).

The parity suite compares FMA targets with the reference within an ulp bound, which would let a
one-ulp error there through; here each step's parameter must equal, bit for bit, what one
correctly rounded NumPy operation at a time gives from the step's own new moments (read back
from the state). Second moments span every magnitude float32 or float64 holds, with 0, infinity
and (denormals kept) subnormal values among them. tools/check_quotient.cpp checks the functions
themselves for every float32 input."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import fusedopt
import ml_dtypes
import numpy as np
import pytest
from conftest import SUPPORTED_TARGETS, assert_same_bits, flushing

ROOT = Path(__file__).resolve().parent.parent

N = 1037  # vector steps and a tail on every target
STEPS = 5
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8
MOMENTUM_DECAY = 4e-3  # NAdam's

# (parameter dtype, arithmetic dtype, options): the compiled loops (float32, float64) and the
# hand-written vector loops (16-bit parameters, their float32 master copy checked)
STORAGES = [
    pytest.param(np.float32, np.float32, {}, id="float32"),
    pytest.param(np.float64, np.float64, {}, id="float64"),
    pytest.param(ml_dtypes.bfloat16, np.float32, {"master_weights": True}, id="bfloat16-master"),
    pytest.param(np.float16, np.float32, {"master_weights": True}, id="float16-master"),
]


def second_moments(rng: np.random.Generator, dtype: Any, denormals: bool) -> np.ndarray:
    """Magnitudes from the smallest normal (or subnormal) value to near the largest."""
    info = np.finfo(dtype)
    low = np.log2(float(info.smallest_subnormal if denormals else info.smallest_normal))
    v = np.exp2(rng.uniform(low, np.log2(float(info.max)) - 4, N)).astype(dtype)
    v[:3] = (0.0, np.inf, info.smallest_subnormal if denormals else info.smallest_normal)
    return v


def expected_parameter(p: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, dtype: Any) -> np.ndarray:
    bc1 = 1 - BETAS[0] ** t  # (float64, as the rule derives them)
    bc2_sqrt = (1 - BETAS[1] ** t) ** 0.5
    with np.errstate(all="ignore"):
        denom = np.sqrt(v) / dtype(bc2_sqrt) + dtype(EPS)
        return p + (dtype(-(LR / bc1)) * m) / denom


def assert_same_bits_or_both_nan(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Bitwise where the expected value is a number; NaN where it is NaN (a NaN's payload
    depends on which operand an instruction picks)."""
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(got), nan), f"{what}: NaN at other places"
    assert_same_bits(got[~nan], expected[~nan], what)


def assert_each_step(opt: Any, p: np.ndarray, param_dtype: Any, rng: np.random.Generator, target: str,
                     expected: Callable[[np.ndarray, np.ndarray, dict[str, Any], int], np.ndarray]) -> None:
    """Steps 2.. of `opt` on gradients of every magnitude (and zeros): each step's parameter (a
    16-bit one's float32 master copy) bit for bit `expected(before, grad, state, t)`."""
    state = opt.state[0]
    stepped = state["master"] if "master" in state else p
    for t in range(2, STEPS + 2):
        grad = (rng.standard_normal(N) * 10.0 ** rng.uniform(-3, 3, N)).astype(param_dtype)
        grad[rng.random(N) < 0.05] = 0
        before = stepped.copy()
        opt.step([grad])
        assert state["step"] == t
        assert_same_bits_or_both_nan(stepped, expected(before, grad, state, t), f"[{target}] step {t}")


@pytest.mark.parametrize("denormals", [False, True], ids=["flushed", "denormals-kept"])
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("param_dtype, dtype, options", STORAGES)
def test_adam_quotient_is_the_division(param_dtype: Any, dtype: Any, options: dict[str, Any], amsgrad: bool,
                                      denormals: bool, target: str) -> None:
    rng = np.random.default_rng(5)
    p = rng.uniform(0.5, 2.0, N).astype(param_dtype)
    with flushing(not denormals):
        opt = fusedopt.Adam([p], lr=LR, betas=BETAS, eps=EPS, amsgrad=amsgrad, **options)
        opt.step([np.zeros(N, param_dtype)])
        state = opt.state[0]
        written = "max_exp_avg_sq" if amsgrad else "exp_avg_sq"
        state["exp_avg_sq"][...] = second_moments(rng, dtype, denormals)
        if amsgrad:
            state["max_exp_avg_sq"][...] = second_moments(rng, dtype, denormals)
        assert_each_step(opt, p, param_dtype, rng, target,
                         lambda before, grad, st, t: expected_parameter(before, st["exp_avg"], st[written], t, dtype))


def expected_nadam_parameter(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                             mu_product: float, dtype: Any) -> np.ndarray:
    """NAdam's step (torch's order of operations) from the step's new moments and mu_product."""
    mu_t = BETAS[0] * (1 - 0.5 * 0.96 ** (t * MOMENTUM_DECAY))
    mu_next = BETAS[0] * (1 - 0.5 * 0.96 ** ((t + 1) * MOMENTUM_DECAY))
    grad_coef = -LR * (1 - mu_t) / (1 - mu_product)
    avg_coef = (-LR * mu_next) / (1 - mu_product * mu_next)
    with np.errstate(all="ignore"):
        denom = np.sqrt(v / dtype(1 - BETAS[1] ** t)) + dtype(EPS)
        p = p + (dtype(grad_coef) * g) / denom
        return p + (dtype(avg_coef) * m) / denom


@pytest.mark.parametrize("denormals", [False, True], ids=["flushed", "denormals-kept"])
@pytest.mark.parametrize("param_dtype, dtype, options", STORAGES)
def test_nadam_quotient_is_the_division(param_dtype: Any, dtype: Any, options: dict[str, Any], denormals: bool,
                                        target: str) -> None:
    rng = np.random.default_rng(6)
    p = rng.uniform(0.5, 2.0, N).astype(param_dtype)
    with flushing(not denormals):
        opt = fusedopt.NAdam([p], lr=LR, betas=BETAS, eps=EPS, momentum_decay=MOMENTUM_DECAY, **options)
        opt.step([np.zeros(N, param_dtype)])
        state = opt.state[0]
        state["exp_avg_sq"][...] = second_moments(rng, dtype, denormals)
        assert_each_step(opt, p, param_dtype, rng, target,
                         lambda before, grad, st, t: expected_nadam_parameter(
                             before, grad.astype(dtype), st["exp_avg"], st["exp_avg_sq"], t, st["mu_product"], dtype))


def compile_check_quotient(tmp_path: Path, march: str) -> Path:
    """tools/check_quotient.cpp built for `march` (skips where tools/ or a compiler is absent)."""
    source = ROOT / "tools" / "check_quotient.cpp"
    if not source.exists():
        pytest.skip("tools/ is not here (the tests copied beside an installed wheel)")
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        pytest.skip("no C++ compiler")
    exe = tmp_path / f"check_quotient_{march}"
    flags = ["-std=gnu++17", "-O3", f"-march={march}", "-ffp-contract=off", "-Wno-ignored-attributes",
             f"-I{ROOT / 'cpp' / 'include'}"]
    subprocess.run([compiler, *flags, str(source), "-o", str(exe)], check=True, timeout=300)
    return exe


@pytest.mark.skipif(platform.machine() != "x86_64" or "avx2" not in SUPPORTED_TARGETS, reason="an x86-64 CPU with FMA")
def test_every_float32_quotient(tmp_path: Path) -> None:
    """QuotientByConstant itself, every float32 x it is given (square roots of floats: 2^-75 to
    2^64, 0, infinity, NaN), for 8 values of c (tools/check_quotient.cpp; its default, 40, takes a
    minute): not one quotient differs from the division."""
    done = subprocess.run([str(compile_check_quotient(tmp_path, "x86-64-v3")), "8"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0 and "8 values of c, 0 mismatches in all" in done.stdout, done.stdout + done.stderr


@pytest.mark.skipif(platform.machine() != "x86_64" or "avx2" not in SUPPORTED_TARGETS, reason="an x86-64 CPU with AVX2")
@pytest.mark.parametrize("march, simd", [("x86-64-v3", "avx2"), ("x86-64-v4", "avx512")])
def test_every_float32_divided_by_a_constant(tmp_path: Path, march: str, simd: str) -> None:
    """DivideByConstant<float> as the compiled loops use it and its vector form (vscale_f64), for
    every float32 bit pattern, 2 values of c (2^-27 and just below 1), denormals kept and flushed
    (tools/check_quotient.cpp --divide): not one quotient differs from the division."""
    if simd not in SUPPORTED_TARGETS:
        pytest.skip(f"this CPU lacks {simd}")
    done = subprocess.run([str(compile_check_quotient(tmp_path, march)), "--divide", "2"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and "2 values of c, 0 mismatches in all" in done.stdout, done.stdout + done.stderr
