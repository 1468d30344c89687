"""Compressed optimizer state, state_dtype="bfloat16" and "int8" (docs/compressed_state.md).

* Native vs the NumPy reference for every optimizer that may compress its state (its rich
  configuration), float32 and bfloat16 parameters, every SIMD target, sizes with vector tails and
  several int8 blocks: bit for bit on the baseline target (parameters, codes, scales, bfloat16
  state); on FMA targets, with teacher forcing, parameters within the float32 suite's bound and
  the stored state within one code (int8) or one stochastic rounding (bfloat16).
* The int8 quantizer itself: the native codes of crafted values (threshold neighbours, tiny,
  negative, zero, non-finite) equal reference.quantize's on every target; every code reads back
  as the NumPy decoding on every target and read path; the code book's error bounds;
  non-negative state keeps values 10^7 below its block's largest.
* Storage: dtypes, shapes and layouts of the state; the same bits at any thread count; state_dict,
  pickle and deepcopy resume bitwise; conversion between storages on request; refusals.
"""

from __future__ import annotations

import contextlib
import copy
import math
import pickle
from collections.abc import Iterator
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    OPTIMIZERS,
    RICH_CONFIGS,
    SUPPORTED_TARGETS,
    Pair,
    assert_snapshot_equal,
    check_ulp_bound,
    low_dtype,
    make_grad_stream,
    make_params,
    same_bits,
    snapshot,
    using_target,
    using_threads,
)
from fusedopt import _core, compressed_state
from test_core_parity import ULPS

ml_dtypes = pytest.importorskip("ml_dtypes")
STORAGES = ("bfloat16", "int8")
SHAPES: list[tuple[int, ...]] = [(), (7,), (33,), (1037,), (3, 300)]
STEPS = 25
COMPRESSIBLE = [n for n in OPTIMIZERS if all(_core.rule_info(OPTIMIZERS[n].rule)["slot_codecs"] or [None])]


def codecs(opt: Any) -> dict[str, str]:
    info = _core.rule_info(opt.rule)
    return dict(zip(info["slots"], info["slot_codecs"]))


def decoded(opt: Any, key: Any, name: str) -> np.ndarray:
    """A state slot's float32 values (1-D, memory order)."""
    st = opt.state[key]
    arrays = [st[name], st[f"{name}_absmax"]] if opt.state_dtype == "int8" else [st[name]]
    return compressed_state.decode(arrays, opt.state_dtype, codecs(opt)[name] != "nonnegative")


def test_the_optimizers_that_compress() -> None:
    assert set(COMPRESSIBLE) == {"SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Lion",
                                 "Adadelta"}


@pytest.mark.parametrize("param_dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("name", COMPRESSIBLE)
def test_native_matches_reference(name: str, storage: str, param_dtype: str, target: str) -> None:
    dt = np.float32 if param_dtype == "float32" else ml_dtypes.bfloat16
    params = make_params(SHAPES, dt, seed=21)
    grads = make_grad_stream(SHAPES, dt, STEPS, seed=22)
    cfg = RICH_CONFIGS[name]
    pair = Pair(OPTIMIZERS[name], params, {**cfg, "lr": cfg["lr"] * (30 if dt is not np.float32 else 1)},
                state_dtype=storage, master_weights=dt is not np.float32)
    for t, g in enumerate(grads):
        where = f"{name} {storage} {param_dtype} [{target}] step {t + 1}: "
        old = pair.copy_b()
        before = {(k, n): decoded(pair.b, k, n) for k in pair.b.state for n in codecs(pair.b) if n in pair.b.state[k]}
        pair.step(g)
        if target == "baseline":
            pair.assert_bitwise(where)
            continue
        for key in pair.a.state:
            for slot in codecs(pair.a):
                if slot not in pair.a.state[key]:
                    continue
                a, b = decoded(pair.a, key, slot), decoded(pair.b, key, slot)
                # the float32 values may differ by the suite's ulp bound (FMA), then land on
                # neighbouring stored values: one int8 code is at most 0.9/64 of the block's
                # largest; one bfloat16 rounding 2^-7 of the value
                o = before.get((key, slot), np.zeros_like(b))
                f32 = ULPS[name] * np.spacing(np.maximum(np.abs(o), np.abs(b - o)).astype(np.float32))
                if storage == "int8":
                    scale = np.repeat(pair.b.state[key][f"{slot}_absmax"], compressed_state.BLOCK)[: b.size]
                    bound = scale * (0.9 / 64) * 1.01 + f32
                else:
                    bound = np.maximum(np.abs(a), np.abs(b)) * 2.0**-7 + f32
                assert (np.abs(a - b) <= bound).all(), f"{where}{slot} of {key}: more than one code apart"
        for label, a, b in pair.arrays():
            if label.startswith("param") and a.dtype == np.float32:
                o = old.get(label, np.zeros_like(b))
                check_ulp_bound(a, b, np.maximum(np.abs(o), np.abs(b - o)), ULPS[name], where=f"{where}{label}: ")
        pair.resync()
    for p0, p in zip(params, pair.a.params):
        assert not np.array_equal(p0, p), f"{name}: a parameter did not change"


def crafted_values() -> np.ndarray:
    """Blocks of values at and beside every threshold of both code books, and awkward ones."""
    pieces = [np.array([1.0, -1.0, 0.0, -0.0, 1e-30, -1e-30, 1e-7, 3e-7, 0.5, -0.25], np.float32)]
    for signed in (True, False):
        q = compressed_state.code_book(signed)
        mids = (q.value[1 : q.top].astype(np.float64) + q.value[2 : q.top + 1]) / 2  # between neighbouring codes
        edges = np.concatenate([q.above, [q.zero, q.one], mids]).astype(np.float32)
        edges = edges[(edges > 0) & (edges <= 1)]
        near = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, 2)])
        pieces.append(np.concatenate([near, -near]))
    x = np.concatenate(pieces).astype(np.float32)
    x = np.concatenate([x, np.zeros(-x.size % 256, np.float32)])
    rng = np.random.default_rng(3)
    block_max = np.repeat(10.0 ** rng.integers(-20, 20, x.size // 256), 256).astype(np.float32)
    return x * block_max  # each block scaled: x / absmax is the crafted value again (absmax = 1 * scale)


@pytest.mark.parametrize("signed", [True, False])
def test_native_codes_equal_the_reference_quantizer(signed: bool, target: str) -> None:
    """SGD with momentum 0.9 and dampening 1: the first step's buffer is the gradient itself, so
    the stored codes are the quantizer's output for those exact values."""
    g = crafted_values()
    if not signed:
        g = np.abs(g)
    p = np.zeros_like(g)
    if signed:
        opt = fusedopt.SGD([p], lr=0.0, momentum=0.9, state_dtype="int8")
        opt.step([g])
        codes, absmax = opt.state[0]["momentum_buffer"], opt.state[0]["momentum_buffer_absmax"]
    else:
        opt = fusedopt.Adagrad([p], lr=0.0, state_dtype="int8")  # sum = 0 + g*g: not g itself
        g = np.sqrt(g).astype(np.float32)
        opt.step([g])
        codes, absmax = opt.state[0]["sum"], opt.state[0]["sum_absmax"]
        g = g * g
    want_codes, want_absmax = compressed_state.quantize(g, signed)
    np.testing.assert_array_equal(absmax, want_absmax)
    np.testing.assert_array_equal(codes, want_codes)


def test_nonfinite_blocks_read_back_as_nan() -> None:
    g = np.ones(600, np.float32)
    g[300] = np.nan
    g[599] = np.inf
    opt = fusedopt.SGD([np.zeros_like(g)], lr=0.0, momentum=0.9, state_dtype="int8")
    opt.step([g])
    values = decoded(opt, 0, "momentum_buffer")
    assert (values[:256] == 1.0).all()
    assert np.isnan(values[256:]).all()


@pytest.mark.parametrize("signed", [True, False])
def test_code_book_error_bounds(signed: bool) -> None:
    rng = np.random.default_rng(7)
    x = (rng.uniform(-1, 1, 256 * 400) * 10.0 ** rng.uniform(-9, 0, 256 * 400)).astype(np.float32)
    if not signed:
        x = np.abs(x)
    codes, absmax = compressed_state.quantize(x, signed)
    back = compressed_state.dequantize(codes, absmax, signed)
    rel = np.abs(back - x) / np.repeat(absmax, 256)
    q = compressed_state.code_book(signed)
    steps = 0.9 / (np.array([1, 2, 4, 8, 16, 32, 63]) if signed else 2.0 ** (np.arange(7) + 1)) * 10.0 ** (np.arange(7) - 6)
    assert rel.max() <= steps[-1] / 2 + 1e-6  # half a step of the coarsest decade
    # only values below half the smallest code (2.75e-7 signed, 1.6e-7 non-negative) of the
    # block's largest become 0
    assert float(q.zero) < (2.8e-7 if signed else 1.7e-7)
    big = np.abs(x) >= float(q.zero) * 1.001 * np.repeat(absmax, 256)
    assert (back[big] != 0).all()
    assert (np.sign(back[back != 0]) == np.sign(x[back != 0])).all()
    assert q.value.dtype == np.float32 and len(set(q.value.tolist())) == (255 if signed else 256)
    assert q.value[q.top] == 1.0 and (back[np.abs(x) == np.repeat(absmax, 256)] == x[np.abs(x) == np.repeat(absmax, 256)]).all()
    again = compressed_state.quantize(back, signed)  # stored state quantizes to itself
    np.testing.assert_array_equal(again[0], codes)
    np.testing.assert_array_equal(again[1], absmax)


@pytest.mark.parametrize("storage", STORAGES)
def test_state_dtypes_shapes_and_layouts(storage: str) -> None:
    p = np.asfortranarray(np.ones((40, 30), np.float32))
    opt = fusedopt.Adam([p], state_dtype=storage, amsgrad=True)
    opt.step([np.ones_like(p)])
    st = opt.state[0]
    want = np.uint8 if storage == "int8" else ml_dtypes.bfloat16
    for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert st[name].dtype == want and st[name].shape == p.shape and st[name].flags.f_contiguous
        if storage == "int8":
            assert st[f"{name}_absmax"].dtype == np.float32 and st[f"{name}_absmax"].shape == (5,)
    expected = sorted(["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
                      + (["exp_avg_absmax", "exp_avg_sq_absmax", "max_exp_avg_sq_absmax"] if storage == "int8" else []))
    assert sorted(st) == expected


@pytest.mark.parametrize("storage", STORAGES)
def test_same_bits_at_any_thread_count(storage: str) -> None:
    shapes = [(70_000,), (1000, 33)]
    results = []
    for threads, min_parallel in ((1, 1 << 30), (2, 1024)):
        with using_threads(threads, min_parallel):
            params = make_params(shapes, np.float32, seed=5)
            opt = fusedopt.AdamW(params, lr=1e-2, state_dtype=storage)
            for g in make_grad_stream(shapes, np.float32, 5, seed=6):
                opt.step(g)
            results.append(snapshot(opt))
    a, b = results
    for x, y in zip(a["params"], b["params"]):
        np.testing.assert_array_equal(x, y)
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for n, v in a["state"][k].items():
            w = b["state"][k][n]
            assert same_bits(v, w) if isinstance(v, np.ndarray) else v == w, f"state[{k}][{n}]"


# (optimizer, options): each rule with a vector loop (vector_element), its variants (three state
# slots: the vector loop with float32 state, scratch_chunk with bfloat16 state)
VECTOR_CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("Adam", {}),
    ("Adam", {"weight_decay": 0.05, "clip_value": 0.5}),
    ("Adam", {"weight_decay": 0.05, "decoupled_weight_decay": True, "maximize": True, "max_grad_norm": 1.0}),
    ("Adam", {"eps_mode": "hat", "betas": (0.3, 0.99)}),  # a lerp weight >= 0.5: the other addend
    ("Adam", {"eps_mode": "hat", "weight_decay": 0.05, "maximize": True, "clip_value": 0.5}),
    ("Adam", {"amsgrad": True, "betas": (0.9, 0.5)}),  # a third slot (beta2 0.5: v falls below its maximum)
    ("Adam", {"amsgrad": True, "weight_decay": 0.05, "decoupled_weight_decay": True, "eps_mode": "hat"}),
    ("SGD", {}),  # no state
    ("SGD", {"momentum": 0.9, "weight_decay": 0.05, "clip_value": 0.5}),
    ("SGD", {"momentum": 0.9, "nesterov": True, "maximize": True, "max_grad_norm": 1.0}),
    ("SGD", {"momentum": 0.8, "dampening": 0.3}),
    ("SGD", {"momentum": 0.9, "formulation": "classic", "nesterov": True, "weight_decay": 0.05}),
    ("Adagrad", {"lr_decay": 0.01, "initial_accumulator_value": 0.1}),
    ("Adagrad", {"weight_decay": 0.05, "maximize": True, "clip_value": 0.5}),
    ("RMSprop", {"weight_decay": 0.05, "max_grad_norm": 1.0}),
    ("RMSprop", {"momentum": 0.9, "alpha": 0.3, "maximize": True}),
    ("RMSprop", {"centered": True, "momentum": 0.9}),  # a third slot
    ("RMSprop", {"centered": True, "weight_decay": 0.05, "alpha": 0.3}),  # slots 2 and 4, not 3
    ("Lion", {"weight_decay": 0.5, "clip_value": 0.5}),
    ("Lion", {"betas": (0.2, 0.6), "maximize": True}),  # lerp weights >= 0.5: the other addend
    ("Adamax", {}),
    ("Adamax", {"weight_decay": 0.05, "betas": (0.3, 0.99), "maximize": True, "max_grad_norm": 1.0}),
    ("NAdam", {"weight_decay": 0.05, "clip_value": 0.5}),
    ("NAdam", {"weight_decay": 0.05, "decoupled_weight_decay": True, "momentum_decay": 0.01, "maximize": True}),
    ("RAdam", {"betas": (0.3, 0.9)}),  # rectified from step 6 of 12
    ("RAdam", {"weight_decay": 0.05, "decoupled_weight_decay": True, "maximize": True, "max_grad_norm": 1.0}),
    ("Adadelta", {}),
    ("Adadelta", {"weight_decay": 0.05, "rho": 0.3, "maximize": True, "clip_value": 0.5}),
    # (no compressed state: float32 state only)
    ("SGDScheduleFree", {"momentum": 0.8, "weight_decay": 0.05, "warmup_steps": 3}),
    ("AdamWScheduleFree", {"weight_decay": 0.05, "betas": (0.3, 0.9), "clip_value": 0.5}),
    ("ASGD", {"t0": 4, "weight_decay": 0.05, "lambd": 0.1}),  # averaging from step 5
    ("ASGD", {"max_grad_norm": 1.0}),
    ("Rprop", {"etas": (0.4, 1.3), "step_sizes": (1e-3, 0.05)}),  # both bounds reached
    ("Rprop", {"maximize": True, "clip_value": 0.5}),
    ("Lamb", {"weight_decay": 0.05, "clip_value": 0.5}),  # with a reduction pass (the trust ratio)
    ("Lamb", {"weight_decay": 0.05, "weight_decouple": False, "grad_averaging": False, "max_weight_norm": 0.5}),
    ("Lamb", {"adam": True, "maximize": True, "max_grad_norm": 1.0}),
    ("LARS", {}),  # no state
    ("LARS", {"momentum": 0.9, "weight_decay": 0.05, "nesterov": True, "clip_value": 0.5}),
    ("LARS", {"momentum": 0.8, "dampening": 0.3, "trust_coefficient": 0.5, "maximize": True}),
]
FLOAT32_STATE_ONLY = {"SGDScheduleFree", "AdamWScheduleFree", "ASGD", "Rprop", "Lamb", "LARS"}
# (parameter dtype, state_dtype, options): the vector loop's storages, then one it leaves to scratch_chunk
VECTOR_STORAGES = [
    ("float32", "bfloat16", {}),
    ("float32", "int8", {}),
    ("bfloat16", None, {}),
    ("bfloat16", "bfloat16", {}),
    ("float16", None, {}),
    ("float16", "bfloat16", {}),
    ("bfloat16", None, {"master_weights": True}),
    ("float16", "bfloat16", {"master_weights": True}),
    ("bfloat16", None, {"stochastic_rounding": True}),
    ("bfloat16", "bfloat16", {"master_weights": True, "stochastic_rounding": True}),
    ("float16", None, {"stochastic_rounding": True}),
]


@contextlib.contextmanager
def vector_loops(allowed: bool) -> Iterator[list[int]]:
    """Vector loops allowed or not; yields a list that gets the elements they took."""
    _core._allow_vector_loops(allowed)
    _core._take_vector_loop_count(True)
    taken: list[int] = []
    try:
        yield taken
    finally:
        taken.append(_core._take_vector_loop_count(False))
        _core._allow_vector_loops(True)


def takes_vector_loop(config: tuple[str, dict[str, Any]], storage: tuple, target: str) -> bool:
    """Whether the rule's vector loop takes this storage (docs/low_precision.md): a target with
    vectors, 16-bit storage or int8 state (not float32 parameters without state: the float32
    kernel's), not float16 with stochastic rounding, at most two bfloat16 state arrays."""
    name, options = config
    param_dtype, state_dtype, extra = storage
    stateless = name in ("SGD", "LARS") and not options.get("momentum")
    three_slots = options.get("amsgrad") or (name == "RMSprop" and options.get("centered") and options.get("momentum"))
    return (
        target != "baseline"
        and not (param_dtype == "float32" and stateless)
        and not (param_dtype == "float16" and extra.get("stochastic_rounding"))
        and not (state_dtype == "bfloat16" and three_slots)
    )


def _storage_id(storage: tuple) -> str:
    return "-".join(str(x) for x in storage[:2]) + "".join(storage[2])


VECTOR_CASES = [
    pytest.param(config, storage, id=config[0] + ":" + (",".join(config[1]) or "plain") + "-" + _storage_id(storage))
    for config in VECTOR_CONFIGS
    for storage in VECTOR_STORAGES
    if storage[1] is None or config[0] not in FLOAT32_STATE_ONLY
]


@pytest.mark.parametrize(("config", "storage"), VECTOR_CASES)
def test_vector_loop_equals_the_scratch_path(config: tuple[str, dict[str, Any]], storage: tuple, target: str) -> None:
    """Adam, NAdam, RAdam, SGD, Adagrad, RMSprop, Lion, Adamax, Adadelta, ASGD, Rprop, the
    schedule-free SGD and AdamW, LAMB and LARS (their update pass after the reduction) on 16-bit
    parameters or bfloat16 state run in one hand-vectorized
    loop (the rule's vector_element: AVX-512 and AVX2) in place of the scratch path. Bit for bit on
    each target: parameters and stored state, sizes with and without vector tails, non-finite
    gradients, pieces starting inside an array (2 threads)."""
    name, config_options = config
    param_dtype, state_dtype, options = storage
    dtype = low_dtype(param_dtype) if param_dtype != "float32" else np.float32
    shapes = [(15,), (16,), (32,), (1037,), (3, 300), (70_000,)]
    results, taken = [], []
    # Non-finite gradients, but never where two NaNs meet in one operation afterwards: which one's
    # sign survives is the compiler's choice of operand order (GCC and clang differ). So not
    # where a NaN norm makes the whole array NaN, and with int8 state only at the last step (a
    # NaN makes its block's scale NaN, so the next step adds a NaN update to a NaN parameter).
    steps = 12
    nonfinite_at = steps - 1 if state_dtype == "int8" else 4
    for allowed, threads in ((False, 1), (True, 1), (True, 2)):
        with vector_loops(allowed) as count, using_threads(threads, 1024):
            params = make_params(shapes, dtype, seed=31)
            opt = getattr(fusedopt, name)(params, lr=3e-2, state_dtype=state_dtype, **config_options, **options)
            for t, g in enumerate(make_grad_stream(shapes, dtype, steps, seed=32)):
                if t == nonfinite_at and not config_options.get("max_grad_norm") and name != "Lamb":
                    g[3][[5, 700]] = [np.nan, np.inf]
                opt.step(g)
            results.append(snapshot(opt))
        taken += count
    for other in results[1:]:
        assert_snapshot_equal(other, results[0])
    # so the comparison compared something: the loop took each step's whole vectors (int8 state:
    # whole blocks of 256), or nothing
    unit = 256 if state_dtype == "int8" else 32  # (32: a multiple of 2 x 16 lanes)
    whole_vectors = steps * sum(math.prod(s) // unit * unit for s in shapes)
    expected = whole_vectors if takes_vector_loop(config, storage, target) else 0
    assert taken[0] == 0 and taken[1] >= expected and (taken[1] > 0) == (expected > 0), taken


@pytest.mark.skipif(not {"avx2", "avx512"} <= set(SUPPORTED_TARGETS), reason="needs the avx2 and avx512 targets")
@pytest.mark.parametrize("storage", VECTOR_STORAGES, ids=_storage_id)
def test_16_bit_storage_has_the_same_bits_on_avx2_and_avx512(storage: tuple) -> None:
    """Both FMA targets compute the same float32 operations, so 16-bit storage gets the same bits
    on both, whichever path (vector loop or scratch, 8 or 16 lanes) each takes: a mistake shared
    by one target's two paths (its bfloat16 narrowing) shows here."""
    param_dtype, state_dtype, options = storage
    dtype = low_dtype(param_dtype) if param_dtype != "float32" else np.float32
    shapes = [(15,), (1037,), (3, 300)]
    results = []
    for target in ("avx2", "avx512"):
        with using_target(target):
            params = make_params(shapes, dtype, seed=33)
            opt = fusedopt.Adam(params, lr=3e-2, state_dtype=state_dtype, weight_decay=0.05, **options)
            for g in make_grad_stream(shapes, dtype, 8, seed=34):
                opt.step(g)
            results.append(snapshot(opt))
    assert_snapshot_equal(results[1], results[0])


def _run(opt: Any, grads: list[list[np.ndarray]]) -> None:
    for g in grads:
        opt.step(g)


@pytest.mark.parametrize("storage", STORAGES)
def test_state_dict_pickle_and_deepcopy_resume_bitwise(storage: str) -> None:
    shapes = [(300,), (20, 30)]
    grads = make_grad_stream(shapes, np.float32, 12, seed=9)
    ref = fusedopt.Adam(make_params(shapes, np.float32, seed=8), lr=1e-2, state_dtype=storage)
    _run(ref, grads)
    half = fusedopt.Adam(make_params(shapes, np.float32, seed=8), lr=1e-2, state_dtype=storage)
    _run(half, grads[:6])
    sd = half.state_dict()
    copies = [pickle.loads(pickle.dumps(half)), copy.deepcopy(half)]
    resumed = fusedopt.Adam([p.copy() for p in half.params], lr=1e-2, state_dtype=storage)
    resumed.load_state_dict(sd)
    for opt in [half, resumed, *copies]:
        _run(opt, grads[6:])
        for p, q in zip(opt.params, ref.params):
            np.testing.assert_array_equal(p, q)
        for k in ref.state:
            for n, v in ref.state[k].items():
                if isinstance(v, np.ndarray):
                    np.testing.assert_array_equal(opt.state[k][n].view(np.uint8), v.view(np.uint8))


def test_loading_another_storage_needs_convert_state() -> None:
    p = make_params([(700,)], np.float32, seed=1)
    g = make_grad_stream([(700,)], np.float32, 3, seed=2)
    plain = fusedopt.Adam([x.copy() for x in p], lr=1e-2)
    _run(plain, g)
    sd = plain.state_dict()
    target = fusedopt.Adam([x.copy() for x in p], lr=1e-2, state_dtype="int8")
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 is float state .* keeps int8 state.*convert_state=True"):
        target.load_state_dict(sd)
    assert snapshot(target)["state"] == before["state"]
    target.load_state_dict(sd, convert_state=True)
    for name in ("exp_avg", "exp_avg_sq"):
        signed = name == "exp_avg"
        codes, absmax = compressed_state.quantize(sd["state"][0][name], signed)
        np.testing.assert_array_equal(target.state[0][name], codes)
        np.testing.assert_array_equal(target.state[0][f"{name}_absmax"], absmax)
    # int8 -> bfloat16 -> float: each through the float32 values the stored state means
    as_bf16 = fusedopt.Adam([x.copy() for x in p], lr=1e-2, state_dtype="bfloat16")
    as_bf16.load_state_dict(target.state_dict(), convert_state=True)
    np.testing.assert_array_equal(as_bf16.state[0]["exp_avg"], decoded(target, 0, "exp_avg").astype(ml_dtypes.bfloat16))
    back = fusedopt.Adam([x.copy() for x in p], lr=1e-2)
    back.load_state_dict(as_bf16.state_dict(), convert_state=True)
    np.testing.assert_array_equal(back.state[0]["exp_avg"], as_bf16.state[0]["exp_avg"].astype(np.float32))
    with pytest.raises(TypeError, match="convert_state"):
        back.load_state_dict(sd, convert_state=1)


def test_adagrad_initial_accumulator_is_stored_compressed() -> None:
    opt = fusedopt.Adagrad([np.zeros(300, np.float32)], initial_accumulator_value=0.3, state_dtype="int8")
    np.testing.assert_array_equal(decoded(opt, 0, "sum"), np.full(300, 0.3, np.float32))
    opt = fusedopt.Adagrad([np.zeros(3, np.float32)], initial_accumulator_value=0.3, state_dtype="bfloat16")
    assert opt.state[0]["sum"].dtype == ml_dtypes.bfloat16


def test_refusals_name_the_argument_and_change_nothing() -> None:
    with pytest.raises(ValueError, match=r"state_dtype: rule 'lamb' cannot keep compressed state"):
        fusedopt.Lamb([np.zeros(3, np.float32)], state_dtype="int8")
    with pytest.raises(ValueError, match=r"state_dtype: rule 'rprop' cannot keep compressed state"):
        fusedopt.Rprop([np.zeros(3, np.float32)], state_dtype="bfloat16")
    with pytest.raises(ValueError, match=r"state_dtype must be one of \('bfloat16', 'int8'\), got 'float8'"):
        fusedopt.Adam([np.zeros(3, np.float32)], state_dtype="float8")
    with pytest.raises(TypeError, match=r"state_dtype must be one of"):
        fusedopt.Adam([np.zeros(3, np.float32)], state_dtype=8)
    p64 = np.zeros(3)
    opt = fusedopt.Adam([p64], state_dtype="int8")
    with pytest.raises(TypeError, match=r"parameter 0: dtype float64 with compressed state"):
        opt.step([np.ones(3)])
    assert opt.step_count == 0 and not opt.state and (p64 == 0).all()
    table = np.ones((10, 4), np.float32)
    opt = fusedopt.Adam([table], state_dtype="int8")
    before = snapshot(opt)
    with pytest.raises(TypeError, match=r"grads for parameter 0: row-sparse gradients with compressed state"):
        opt.step([fusedopt.RowSparse(np.array([1]), np.ones((1, 4), np.float32))])
    assert snapshot(opt)["step_count"] == before["step_count"] and (table == 1).all()


def test_a_replaced_state_array_is_checked() -> None:
    p = np.zeros(300, np.float32)
    opt = fusedopt.Adam([p], state_dtype="int8")
    opt.step([np.ones(300, np.float32)])
    opt.state[0]["exp_avg"] = np.zeros(300, np.float32)
    with pytest.raises(TypeError, match=r"exp_avg for parameter 0: dtype float32 does not match"):
        opt.step([np.ones(300, np.float32)])
    opt.state[0]["exp_avg"] = np.zeros(300, np.uint8)
    opt.state[0]["exp_avg_absmax"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"exp_avg_absmax for parameter 0: shape \(3,\) is not the \(2,\)"):
        opt.step([np.ones(300, np.float32)])
    opt.state[0]["exp_avg_absmax"] = np.zeros(2, np.float32)
    opt.step([np.ones(300, np.float32)])  # a fresh zero moment, now used
    assert opt.step_count == 2


def test_torch_state_dicts_carry_the_stored_values() -> None:
    from fusedopt import interop

    p = make_params([(700,)], np.float32, seed=1)
    opt = fusedopt.Adam([p[0].copy()], lr=1e-2, state_dtype="int8")
    _run(opt, make_grad_stream([(700,)], np.float32, 3, seed=2))
    tsd = interop.to_torch_state_dict(opt)
    values = np.asarray(tsd["state"][0]["exp_avg"])
    np.testing.assert_array_equal(values, decoded(opt, 0, "exp_avg"))
    assert "exp_avg_absmax" not in tsd["state"][0]
    again = fusedopt.Adam([p[0].copy()], lr=1e-2, state_dtype="int8")
    interop.from_torch_state_dict(again, tsd)
    for name in ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax"):
        np.testing.assert_array_equal(again.state[0][name], opt.state[0][name])  # the values requantize to themselves


@pytest.mark.parametrize("storage", STORAGES)
def test_any_dense_layout_matches_the_reference(storage: str) -> None:
    """Blocks and random bits run over memory order: a Fortran-order parameter (and its state)
    gives the bits of the same memory as a C-order one, in native and NumPy alike."""
    c = make_params([(40, 70)], np.float32, seed=3)[0]
    grads = make_grad_stream([(40, 70)], np.float32, 6, seed=4)
    with using_target("baseline"):
        pair = Pair(fusedopt.Adam, [c], {"lr": 1e-2}, state_dtype=storage)
        for opt in (pair.a, pair.b):  # (Pair copies in C order)
            opt.param_groups[0]["params"][0] = np.asfortranarray(c)
        flat = fusedopt.Adam([np.ascontiguousarray(c.T)], lr=1e-2, state_dtype=storage)  # the same memory
        for g in grads:
            pair.step([np.asfortranarray(g[0])])
            flat.step([np.ascontiguousarray(g[0].T)])
        pair.assert_bitwise(f"{storage} Fortran order: ")
    assert pair.a.params[0].flags.f_contiguous and pair.a.state[0]["exp_avg"].flags.f_contiguous
    np.testing.assert_array_equal(pair.a.params[0].T, flat.params[0])
    for name, v in flat.state[0].items():
        if isinstance(v, np.ndarray) and v.ndim == 2:
            np.testing.assert_array_equal(pair.a.state[0][name].T.view(np.uint8), v.view(np.uint8))


def int8_read_paths() -> list[tuple[str, bool]]:
    """(target, byte permutes allowed): every way this CPU reads int8 state (kernels/quantize.hpp:
    one code at a time on the baseline, gathers on AVX2, permutes on AVX-512, AVX512-VBMI's byte
    permutes where the CPU has them)."""
    return [(t, True) for t in SUPPORTED_TARGETS] + [("avx512", False)] * ("avx512" in SUPPORTED_TARGETS)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("n", [64, 1000, 2 * 256 + 7])
def test_int8_state_reads_as_the_reference_decodes_on_every_path(signed: bool, n: int) -> None:
    """Every code of both code books (signed: SGD's momentum buffer, with code 128; non-negative:
    Adagrad's sum), in blocks with a tail after the last full vector, set directly, then one step
    whose parameter is an exact function of the decoded state on every target (SGD, momentum 1,
    lr 1, zero gradient: p = -state; Adagrad, lr 1, gradient 1: p = -1 / sqrt(state + 1), each
    operation one IEEE rounding, so FMA changes nothing): the same bits as the NumPy decoding."""
    rng = np.random.default_rng(n)
    codes = ((np.arange(n) * 5 + 3) % 256).astype(np.uint8)  # every code, in no particular order
    scales = rng.uniform(1.0, 1e3, -(-n // 256)).astype(np.float32)
    slot = "momentum_buffer" if signed else "sum"
    value = compressed_state.decode([codes, scales], "int8", signed)
    want = np.float32(0) - value if signed else np.float32(0) - np.float32(1) / np.sqrt(value + np.float32(1))
    for target, byte_permutes in int8_read_paths():
        _core._allow_byte_permutes(byte_permutes)
        try:
            with using_target(target):
                p = np.zeros(n, np.float32)
                if signed:
                    opt = fusedopt.SGD([p], lr=1.0, momentum=1.0, state_dtype="int8")
                    opt.step([np.zeros(n, np.float32)])
                else:
                    opt = fusedopt.Adagrad([p], lr=1.0, eps=0.0, state_dtype="int8")
                    opt.step([np.ones(n, np.float32)])
                opt.state[0][slot][...] = codes
                opt.state[0][f"{slot}_absmax"][...] = scales
                p[...] = 0.0
                opt.step([np.zeros(n, np.float32) if signed else np.ones(n, np.float32)])
        finally:
            _core._allow_byte_permutes(True)
        assert same_bits(p, want), f"{target}, byte permutes {byte_permutes}: {np.flatnonzero(p != want)[:8]}"
