"""bfloat16 (ml_dtypes) and float16 parameters and gradients (docs/low_precision.md).

* Native vs the NumPy reference for every optimizer (its rich configuration), both 16-bit
  dtypes, every SIMD target, sizes with vector tails: bit for bit on the baseline target
  (parameters and float32 state); on FMA targets, with teacher forcing, each float32 state
  array within the float32 suite's per-step bound and each parameter within one rounding of its
  dtype (the float32 results may straddle a rounding boundary).
* The rounding itself: SGD with lr=1 computes p - g exactly in float32, so its stored result is
  exactly ``(p - g).astype(dtype)`` (ties, overflow to inf, subnormals, NaN).
* torch 2.13 on bfloat16/float16 CPU tensors: within one rounding of the stored dtype per step.
* state dtype float32; state_dict, pickle and deepcopy resume bitwise; bad inputs.
"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import fusedopt
import numpy as np
from fusedopt import _core
import pytest
from conftest import (
    OPTIMIZERS,
    RICH_CONFIGS,
    SUPPORTED_TARGETS,
    Pair,
    assert_same_bits,
    check_ulp_bound,
    flushing,
    make_grad_stream,
    make_params,
    using_target,
)
from test_core_parity import ULPS

ml_dtypes = pytest.importorskip("ml_dtypes")
LOW = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
SHAPES: list[tuple[int, ...]] = [(), (1,), (7,), (33,), (1037,), (3, 5)]
STEPS = 25


def ulp16(x: np.ndarray, dtype: Any) -> np.ndarray:
    """The spacing of `dtype` at |x| (x given in float32), as float64."""
    x = np.abs(np.asarray(x, dtype=np.float64))
    if np.dtype(dtype) == np.dtype(np.float16):
        return np.spacing(x.astype(np.float16)).astype(np.float64)
    return np.spacing(x.astype(np.float32)).astype(np.float64) * 2.0**16  # 7 mantissa bits, not 23


REDUCING = [n for n in OPTIMIZERS if _core.rule_info(OPTIMIZERS[n].rule)["reduce_passes"]]


@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_native_matches_reference(name: str, dtype: str, target: str) -> None:
    dt = LOW[dtype]
    params = make_params(SHAPES, dt, seed=11)
    grads = make_grad_stream(SHAPES, dt, STEPS, seed=12)
    # lr x30: a step of 1e-3 is below half a bfloat16 spacing at |p| >= 0.5 and would leave
    # the parameters unchanged (what stochastic rounding and master weights are for)
    cfg = RICH_CONFIGS[name]
    pair = Pair(OPTIMIZERS[name], params, {**cfg, "lr": cfg["lr"] * 30})
    for t, g in enumerate(grads):
        where = f"{name} {dtype} [{target}] step {t + 1}: "
        old = pair.copy_b()
        pair.step(g)
        if target == "baseline":
            pair.assert_bitwise(where)
            continue
        for label, a, b in pair.arrays():
            if label.startswith("param"):
                assert a.dtype == dt
                diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
                assert (diff <= ulp16(np.maximum(np.abs(a.astype(np.float32)), np.abs(b.astype(np.float32))), dt)).all(), \
                    f"{where}{label}: more than one rounding apart"
            else:
                assert a.dtype == np.float32, f"{label}: state dtype {a.dtype}"
                o = old.get(label, np.zeros_like(b))
                check_ulp_bound(a, b, np.maximum(np.abs(o), np.abs(b - o)), ULPS[name], where=f"{where}{label}: ")
        pair.resync()
    for p0, p in zip(params, pair.a.params):
        assert not np.array_equal(p0, p), f"{name}: a parameter did not change"


def _rounding_cases(dt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (p, g), both exact in `dt`, whose float32 difference p - g is exact and lands on
    ties, just beside them, past the largest finite value, among subnormals, and on NaN/inf."""
    rng = np.random.default_rng(5)
    info = ml_dtypes.finfo(dt) if dt is ml_dtypes.bfloat16 else np.finfo(dt)
    big, tiny = float(info.max), float(info.smallest_subnormal)
    eps = float(info.eps)
    p = [1.0, 1.0, 1.0, big, big, -big, tiny * 3, tiny, 0.0, np.inf, np.nan, 1.0, -0.0]
    g = [eps / 4, -eps / 2, eps * 3 / 4, -big * eps / 4, -big * eps / 2, big * eps / 2, tiny * 2, tiny, -0.0,
         1.0, 1.0, np.inf, 0.0]
    # random magnitudes: the exact difference has up to ~16 significant bits, rounded once
    e = rng.integers(-8, 8, size=4000)
    a = np.ldexp(rng.uniform(1, 2, 4000), e) * rng.choice((-1, 1), 4000)
    b = np.ldexp(rng.uniform(1, 2, 4000), e - rng.integers(0, 9, 4000)) * rng.choice((-1, 1), 4000)
    pa = np.concatenate([np.array(p), a]).astype(dt)
    ga = np.concatenate([np.array(g), b]).astype(dt)
    exact = pa.astype(np.float64) - ga.astype(np.float64)
    ok = np.isnan(exact) | np.isinf(exact) | (exact.astype(np.float32).astype(np.float64) == exact)
    return pa[ok], ga[ok]


@pytest.mark.parametrize("dtype", list(LOW))
def test_rounding_is_nearest_even(dtype: str, target: str) -> None:
    dt = LOW[dtype]
    p, g = _rounding_cases(dt)
    with np.errstate(all="ignore"):
        expected = (p.astype(np.float32) - g.astype(np.float32)).astype(dt)
    with flushing(False), np.errstate(all="ignore"):  # subnormal float32 differences must reach the rounding
        fusedopt.SGD([p], lr=1.0).step([g])
    assert_same_bits(p, expected, f"{dtype} p - g")


@pytest.mark.parametrize("dtype", list(LOW))
def test_every_16bit_value_survives_a_step_of_zero(dtype: str, target: str) -> None:
    """Each of the 65536 bit patterns widened to float32 and narrowed back (p - 1 * 0): the
    conversions are exact for every value, subnormals, infinities and NaNs included (float16
    without F16C: integer arithmetic; NaNs come back quiet, as NumPy's arithmetic makes them)."""
    dt = LOW[dtype]
    p = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(dt)
    with np.errstate(all="ignore"):
        expected = (p.astype(np.float32) - np.float32(0)).astype(dt)
    with flushing(False):  # (bfloat16's subnormals widen to float32 subnormals)
        fusedopt.SGD([p], lr=1.0).step([np.zeros(65536, dt)])
    assert_same_bits(p, expected, f"{target}: {dtype}")


@pytest.mark.parametrize("stochastic", [False, True])
def test_nan_payloads_round_to_the_quiet_nan_of_their_sign(stochastic: bool, target: str) -> None:
    """A float32 master weight holding a NaN whose low bits would carry in the rounding (payload
    all ones: +0x7fff would turn it into -0.0) is stored as the quiet bfloat16 NaN of its sign,
    as ml_dtypes' astype does, in either half of a vector pair and in the scalar tail."""
    n = 70
    nan_bits = {3: 0x7FFFFFFF, 12: 0xFFFFFFFF, 21: 0x7FFFFFFF, 45: 0xFFFFFFFF, 66: 0x7FFFFFFF}
    p = np.ones(n, ml_dtypes.bfloat16)
    opt = fusedopt.SGD([p], lr=0.5, master_weights=True, stochastic_rounding=stochastic)
    opt.step([np.zeros(n, ml_dtypes.bfloat16)])
    master = opt.state[0]["master"]
    for i, bits in nan_bits.items():
        master.view(np.uint32)[i] = bits
    opt.step([np.ones(n, ml_dtypes.bfloat16)])
    expected = np.full(n, 0x3F00, np.uint16)  # 1 - 0.5
    for i, bits in nan_bits.items():
        expected[i] = 0xFFC0 if bits >> 31 else 0x7FC0
    assert_same_bits(p.view(np.uint16), expected, f"{target}, stochastic={stochastic}")


@pytest.mark.parametrize("dtype", list(LOW))
def test_state_is_float32_and_resumes_bitwise(dtype: str) -> None:
    dt = LOW[dtype]
    shapes = [(7,), (3, 5)]
    grads = make_grad_stream(shapes, dt, 8, seed=3)
    a = fusedopt.Adam(make_params(shapes, dt, seed=2), lr=1e-2, amsgrad=True)
    for g in grads[:4]:
        a.step(g)
    assert all(v.dtype == np.float32 for st in a.state.values() for v in st.values() if isinstance(v, np.ndarray))
    saved = copy.deepcopy(a.state_dict())
    b = fusedopt.Adam([p.copy() for p in a.params], lr=1e-2, amsgrad=True)
    b.load_state_dict(saved)
    c = pickle.loads(pickle.dumps(a))
    d = copy.deepcopy(a)
    for g in grads[4:]:
        for o in (a, b, c, d):
            o.step(g)
    for o in (b, c, d):
        for pa, po in zip(a.params, o.params):
            assert_same_bits(po, pa, "resumed parameter")
        for key, st in a.state.items():
            for name, v in st.items():
                if isinstance(v, np.ndarray):
                    assert_same_bits(o.state[key][name], v, f"resumed state {name}")


@pytest.mark.parametrize("dtype", list(LOW))
def test_clipping_matches_reference(dtype: str, baseline_target: str) -> None:
    dt = LOW[dtype]
    shapes = [(33,), (1037,)]
    grads = make_grad_stream(shapes, dt, 5, seed=8)
    pair = Pair(fusedopt.AdamW, make_params(shapes, dt, seed=7), {"lr": 1e-2}, max_grad_norm=1.0)
    for g in grads:
        pair.step(g)
        pair.assert_bitwise()
        assert pair.a.last_grad_norm == pair.b.last_grad_norm


def test_mixed_dtypes_in_one_group() -> None:
    params = [make_params([(9,)], dt, seed=1)[0] for dt in (np.float32, ml_dtypes.bfloat16, np.float16, np.float64)]
    grads = [np.full(9, 0.5, dtype=p.dtype) for p in params]
    pair = Pair(fusedopt.Adam, params, {"lr": 1e-2})
    with using_target("baseline"):
        for _ in range(3):
            pair.step(grads)
            pair.assert_bitwise()


def test_bad_inputs_change_nothing() -> None:
    p = make_params([(5,)], ml_dtypes.bfloat16, seed=1)[0]
    opt = fusedopt.Adam([p], lr=1e-2)
    opt.step([np.ones(5, dtype=ml_dtypes.bfloat16)])
    before = (p.copy(), {k: v.copy() for k, v in opt.state[0].items() if isinstance(v, np.ndarray)})
    with pytest.raises(TypeError, match=r"grads for parameter 0: dtype float32 does not match the parameter's bfloat16"):
        opt.step([np.ones(5, dtype=np.float32)])
    opt.state[0]["exp_avg"] = np.zeros(5, dtype=ml_dtypes.bfloat16)
    with pytest.raises(TypeError, match=r"exp_avg for parameter 0: dtype bfloat16 .*\(its state is float32\)"):
        opt.step([np.ones(5, dtype=ml_dtypes.bfloat16)])
    opt.state[0]["exp_avg"] = before[1]["exp_avg"].copy()
    assert_same_bits(p, before[0], "parameter")
    with pytest.raises(TypeError, match=r"dtype int16 is not supported; use float32 or float64 \(or bfloat16"):
        fusedopt.clip_grad_norm_([np.ones(3, dtype=np.int16)], 1.0)
    with pytest.raises(TypeError, match=r"dtype int16 is not supported; use float32 or float64 \(or bfloat16"):
        fusedopt.SGD([np.ones(3, dtype=np.int16)], lr=0.1)


@pytest.mark.parametrize("dtype_name", list(LOW))
def test_standalone_clipping_of_16bit_gradients(dtype_name: str) -> None:
    """fusedopt.clip on 16-bit gradients (mixed with float32 ones): the norm of their exact
    values; the scale and clamp in float32, each result rounded once, on every target."""
    dt = LOW[dtype_name]
    rng = np.random.default_rng(3)
    sizes = (7, 1000, 33333)
    grads = [(rng.standard_normal(n) * 3).astype(dt) for n in sizes] + [rng.standard_normal(50).astype(np.float32)]
    grads[1][5] = np.nan
    wide = [g.astype(np.float32) for g in grads]
    for p in (2.0, 1.0, 3.0, np.inf, 0.0):
        assert repr(fusedopt.get_total_norm(grads, p)) == repr(fusedopt.get_total_norm(wide, p)), p
    clean = [g.copy() for g in grads]
    clean[1][5] = 0
    for target in SUPPORTED_TARGETS:
        with using_target(target):
            got = [g.copy() for g in clean]
            norm = fusedopt.clip_grad_norm_(got, 5.0)
            coef = np.float32(5.0 / (norm + 1e-6))
            for g, c in zip(got, clean):
                assert_same_bits(g, (c.astype(np.float32) * coef).astype(g.dtype), f"{target}: clip_grad_norm_")
            got = [g.copy() for g in grads]
            fusedopt.clip_grad_value_(got, 0.3)
            for g, w in zip(got, wide):
                assert_same_bits(g, np.clip(w, np.float32(-0.3), np.float32(0.3)).astype(g.dtype), f"{target}: clip_grad_value_")
    views = np.ones(10, dt)
    with pytest.raises(ValueError, match="two arrays share memory"):
        fusedopt.clip_grad_value_([views[:6], views[4:]], 0.5)
    assert_same_bits(views, np.ones(10, dt), "refused")


@pytest.mark.torch
@pytest.mark.parametrize("dtype_name", list(LOW))
def test_standalone_clipping_of_16bit_gradients_against_torch(dtype_name: str) -> None:
    """torch.nn.utils on such tensors: clip_grad_value_ bit for bit; clip_grad_norm_ within two
    roundings (torch rounds the norm and the coefficient to the gradients' dtype)."""
    torch = pytest.importorskip("torch")
    dt = LOW[dtype_name]
    rng = np.random.default_rng(4)
    grads = [(rng.standard_normal(n) * 3).astype(dt) for n in (7, 1000, 33333)]
    for clip in ("norm", "value"):
        params = [torch.nn.Parameter(torch.zeros(g.shape, dtype=getattr(torch, dtype_name))) for g in grads]
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g.astype(np.float32)).to(p.dtype)
        ours = [g.copy() for g in grads]
        if clip == "norm":
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            fusedopt.clip_grad_norm_(ours, 5.0)
        else:
            torch.nn.utils.clip_grad_value_(params, 0.3)
            fusedopt.clip_grad_value_(ours, 0.3)
        for p, g in zip(params, ours):
            want = p.grad.float().numpy()
            if clip == "value":
                assert_same_bits(g.astype(np.float32), want, "clip_grad_value_")
            else:
                ulp = np.spacing(np.abs(want).astype(dt)).astype(np.float32)
                assert np.all(np.abs(g.astype(np.float32) - want) <= 2 * ulp), "clip_grad_norm_"


# ---------------------------------------------------------------------------------------------
# torch 2.13 on bfloat16 / float16 CPU tensors (torch keeps their state in the parameter's dtype)
# ---------------------------------------------------------------------------------------------

# Steps of about 1e-2 per step: a few bfloat16 spacings at |p| in [0.5, 2), so rounding matters,
# and parameters stay away from zero over the run.
TORCH_CONFIGS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 2e-3, "momentum": 0.9, "weight_decay": 0.05},
    "Adagrad": {"lr": 1e-2, "weight_decay": 0.05},
    "RMSprop": {"lr": 1e-3, "momentum": 0.9, "centered": True},
    "Adam": {"lr": 1e-2, "weight_decay": 0.05},
    "AdamW": {"lr": 1e-2, "weight_decay": 0.05, "amsgrad": True},
    "Adamax": {"lr": 1e-2},
    "NAdam": {"lr": 1e-2},
    "RAdam": {"lr": 1e-2},
    "Adadelta": {"lr": 1.0, "eps": 1e-4},
    "Adafactor": {"lr": 1e-2},
}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("name", list(TORCH_CONFIGS))
def test_torch_parity(name: str, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    dt = LOW[dtype]
    tdt = {"bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    shapes = [(7,), (33,), (1037,)]
    params = make_params(shapes, dt, seed=21)
    grads = make_grad_stream(shapes, dt, STEPS, seed=22)
    ours = fusedopt.__dict__[name]([p.copy() for p in params], **TORCH_CONFIGS[name])
    tp = [torch.tensor(p.astype(np.float32)).to(tdt).requires_grad_(True) for p in params]
    theirs = getattr(torch.optim, name)(tp, **TORCH_CONFIGS[name])
    # as the float32 suite's free-running bound: after step t, t roundings of the running max |p|
    top = [np.abs(p.astype(np.float64)) for p in params]
    for t, g in enumerate(grads):
        for x, gi in zip(tp, g):
            x.grad = torch.tensor(gi.astype(np.float32)).to(tdt)
        theirs.step()
        ours.step(g)
        for i, (a, x) in enumerate(zip(ours.params, tp)):
            b = x.detach().double().numpy()
            top[i] = np.maximum(top[i], np.maximum(np.abs(a.astype(np.float64)), np.abs(b)))
            excess = np.abs(a.astype(np.float64) - b) / ((t + 1) * ulp16(top[i], dt))
            assert excess.max() <= 1.0, f"{name} {dtype} step {t + 1} param {i}: {excess.max():.3g}x the bound"


# ---------------------------------------------------------------------------------------------
# Stochastic rounding and master weights
# ---------------------------------------------------------------------------------------------

OPTIONS: dict[str, dict[str, Any]] = {
    "stochastic": {"stochastic_rounding": True, "rounding_seed": 7},
    "master": {"master_weights": True},
    "master+stochastic": {"master_weights": True, "stochastic_rounding": True},
}


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Lion", *REDUCING])
def test_options_match_reference(name: str, dtype: str, option: str, target: str) -> None:
    dt = LOW[dtype]
    params = make_params(SHAPES, dt, seed=31)
    grads = make_grad_stream(SHAPES, dt, STEPS, seed=32)
    pair = Pair(OPTIMIZERS[name], params, RICH_CONFIGS[name], **OPTIONS[option])
    for t, g in enumerate(grads):
        old = pair.copy_b()
        pair.step(g)
        _compare(pair, name, dt, target, old, f"{name} {dtype} {option} [{target}] step {t + 1}: ")
    if "master" in option:
        for key, st in pair.a.state.items():
            p = pair.a.params[key]
            assert st["master"].dtype == np.float32 and st["master"].shape == p.shape
            if "stochastic" not in option:
                assert_same_bits(p, st["master"].astype(dt), "parameter = master rounded")


@pytest.mark.parametrize("option", ["plain", *OPTIONS])
@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("name", REDUCING)
def test_reductions_over_many_chunks(name: str, dtype: str, option: str, target: str) -> None:
    """Per-array reductions of 16-bit parameters are float32 passes over each chunk's widened
    copy, and the update runs on blocks of 512 that start anywhere in a row (Adafactor's row and
    column factors indexed from the block's offset): arrays of several chunks (8192 elements
    each), matrices whose rows do not divide 512, as the reference."""
    dt = LOW[dtype]
    shapes = [(20000,), (130, 70), (2, 37, 29), (9,)]
    params = make_params(shapes, dt, seed=41)
    grads = make_grad_stream(shapes, dt, 4, seed=42)
    pair = Pair(OPTIMIZERS[name], params, RICH_CONFIGS[name], **OPTIONS.get(option, {}))
    for t, g in enumerate(grads):
        old = pair.copy_b()
        pair.step(g)
        _compare(pair, name, dt, target, old, f"{name} {dtype} {option} [{target}] step {t + 1}: ")


def _compare(pair: Pair, name: str, dt: Any, target: str, old: dict[str, np.ndarray], where: str) -> None:
    if target == "baseline":
        pair.assert_bitwise(where)
        return
    for label, a, b in pair.arrays():
        if label.startswith("param"):
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            top = np.maximum(np.abs(a.astype(np.float32)), np.abs(b.astype(np.float32)))
            assert (diff <= ulp16(top, dt)).all(), f"{where}{label}: more than one rounding apart"
        else:
            o = old.get(label, np.zeros_like(b))
            check_ulp_bound(a, b, np.maximum(np.abs(o), np.abs(b - o)), ULPS[name], where=f"{where}{label}: ")
    pair.resync()


@pytest.mark.parametrize("dtype", list(LOW))
def test_stochastic_rounding_is_unbiased_and_reproducible(dtype: str) -> None:
    """p = 1, g = -spacing/8: nearest-even rounding keeps 1, stochastic rounding goes up one
    spacing with probability 1/8; the same seed gives the same bits at any thread count."""
    dt = LOW[dtype]
    n = 200_000
    spacing = float(ulp16(np.float32(1.0), dt))
    g = np.full(n, -spacing / 8, dtype=dt)

    def run(seed: int, threads: int) -> np.ndarray:
        p = np.ones(n, dtype=dt)
        from conftest import using_threads

        with using_threads(threads, min_parallel=1):
            fusedopt.SGD([p], lr=1.0, stochastic_rounding=True, rounding_seed=seed).step([g])
        return p

    a = run(1, 1)
    up = a.astype(np.float64) > 1.0
    assert set(np.unique(a.astype(np.float64))) <= {1.0, 1.0 + spacing}
    assert abs(up.mean() - 1 / 8) < 5 * np.sqrt(1 / 8 * 7 / 8 / n)  # five sigma
    assert_same_bits(run(1, 2), a, "same seed, two threads")
    assert not np.array_equal(run(2, 1), a)
    nearest = np.ones(n, dtype=dt)
    fusedopt.SGD([nearest], lr=1.0).step([g])
    assert (nearest.astype(np.float64) == 1.0).all()


def test_master_weights_keep_small_updates() -> None:
    """Adam at lr 1e-4 on bfloat16 parameters near 1: each step is below half a spacing, so the
    parameter alone never moves; with master weights it follows the float32 run."""
    shapes = [(1000,)]
    p32 = make_params(shapes, np.float32, seed=3)[0]
    grads = make_grad_stream(shapes, np.float32, 60, seed=4)
    bf = ml_dtypes.bfloat16
    plain, master, ref = p32.astype(bf), p32.astype(bf), p32.astype(bf).astype(np.float32)
    o1 = fusedopt.Adam([plain], lr=1e-4)
    o2 = fusedopt.Adam([master], lr=1e-4, master_weights=True)
    o3 = fusedopt.Adam([ref], lr=1e-4)
    for g in grads:
        o1.step([g[0].astype(bf)])
        o2.step([g[0].astype(bf)])
        o3.step([g[0].astype(bf).astype(np.float32)])
    assert np.array_equal(plain, p32.astype(bf))
    assert_same_bits(o2.state[0]["master"], ref, "master == float32 run")
    assert_same_bits(master, ref.astype(bf), "parameter == float32 run, rounded")


def test_master_and_stochastic_resume_bitwise() -> None:
    dt = ml_dtypes.bfloat16
    shapes = [(7,), (40,)]
    grads = make_grad_stream(shapes, dt, 8, seed=3)
    opts = {"lr": 1e-3, "master_weights": True, "stochastic_rounding": True, "rounding_seed": 5}
    a = fusedopt.AdamW(make_params(shapes, dt, seed=2), **opts)
    for g in grads[:4]:
        a.step(g)
    assert set(a.state[0]) == {"step", "exp_avg", "exp_avg_sq", "master"}
    saved = copy.deepcopy(a.state_dict())
    b = fusedopt.AdamW([p.copy() for p in a.params], **opts)
    b.load_state_dict(saved)
    c = pickle.loads(pickle.dumps(a))
    for g in grads[4:]:
        for o in (a, b, c):
            o.step(g)
    for o in (b, c):
        for pa, po in zip(a.params, o.params):
            assert_same_bits(po, pa, "resumed parameter")
        assert_same_bits(o.state[1]["master"], a.state[1]["master"], "resumed master")


def test_options_checked_and_ignored_for_float32() -> None:
    with pytest.raises(TypeError, match="master_weights"):
        fusedopt.Adam([np.ones(3, np.float32)], master_weights=1)
    with pytest.raises(TypeError, match="stochastic_rounding"):
        fusedopt.Adam([np.ones(3, np.float32)], stochastic_rounding="yes")
    with pytest.raises(ValueError, match="rounding_seed"):
        fusedopt.Adam([np.ones(3, np.float32)], rounding_seed=-1)
    p = np.ones(3, np.float32)
    opt = fusedopt.Adam([p], master_weights=True, stochastic_rounding=True)
    opt.step([np.ones(3, np.float32)])
    assert "master" not in opt.state[0]


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "Lion"])
def test_flat_arena_of_16bit_params_steps_as_separate_arrays(name: str, dtype_name: str) -> None:
    """FlatParams in bfloat16 (by name or ml_dtypes' type) or float16: one flat step over the
    arena, with master weights, has the bits of separate arrays."""
    arena = fusedopt.FlatParams({"W": (5, 7), "b": (7,), "c": 3}, dtype=dtype_name)
    assert arena.dtype == np.dtype(LOW[dtype_name]) and arena.flat_params.dtype == arena.dtype
    rng = np.random.default_rng(4)
    for v in arena.params.values():
        v[...] = rng.standard_normal(v.shape).astype(np.float32).astype(v.dtype)
    separate = {k: v.copy() for k, v in arena.params.items()}
    kw = dict(RICH_CONFIGS[name], master_weights=True)
    flat_opt = OPTIMIZERS[name]([arena.flat_params], **kw)
    opt = OPTIMIZERS[name](separate, **kw)
    for _ in range(5):
        for v in arena.grads.values():
            v[...] = rng.standard_normal(v.shape).astype(np.float32).astype(v.dtype)
        flat_opt.step([arena.flat_grads])
        opt.step({k: v.copy() for k, v in arena.grads.items()})
    for k, v in separate.items():
        assert_same_bits(arena.params[k], v, k)
