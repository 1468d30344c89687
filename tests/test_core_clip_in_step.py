"""Clipping inside the step (max_grad_norm=, clip_value=, clip_scope=) and the non-finite
guard (nonfinite="skip" / "raise" / "propagate"), for every optimizer.

Clip-then-step is computed here by hand: the norm in float64 NumPy, the coefficient
min(1, max_norm / (norm + 1e-6)) as torch.nn.utils.clip_grad_norm_ computes it, the gradients
scaled by it (rounded once to the array dtype, as the kernels do), then an optimizer WITHOUT
clipping steps on those. The gradients are small dyadic rationals (k/1024 times a power of two)
so every square and every partial sum is exact in float64: the norm has the same bits however
it is summed (native lanes and chunks, NumPy's pairwise sum), and the comparisons can be
bitwise: against the native optimizer on every SIMD target, and against the NumPy reference
on baseline (where native == reference bit for bit).
"""

from __future__ import annotations

import math
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    DTYPES,
    OPTIMIZERS,
    RICH_CONFIGS,
    armed,
    assert_same_bits,
    assert_snapshot_equal,
    copies,
    make_grad_stream,
    make_params,
    snapshot,
)

NAMES = list(OPTIMIZERS)
SHAPES_G0 = [(40,), (3, 7)]
SHAPES_G1 = [(), (65,), (1,)]
SHAPES = SHAPES_G0 + SHAPES_G1
N0 = len(SHAPES_G0)
STEPS = 6
# per-step scale of the gradients (powers of two keep them dyadic): the norms straddle
# MAX_NORM, so some steps clip and some do not
STEP_SCALES = (1.0, 0.125, 4.0, 0.0625, 2.0, 1.0)
MAX_NORM = 3.0


def dyadic_stream(shapes: list, dtype: Any, seed: int, scales: tuple = STEP_SCALES) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for s in scales:
        row = []
        for shape in shapes:
            k = rng.integers(-1024, 1025, size=shape)
            row.append(np.array(k / 1024.0 * s * 0.25, dtype=np.float64).astype(dtype))
        out.append(row)
    return out


def norm64(grads: list[np.ndarray]) -> float:
    """The 2-norm over all elements, in float64 NumPy."""
    return float(np.sqrt(sum(float(np.sum(np.square(g.astype(np.float64)))) for g in grads)))


def coefficient(norm: float, max_norm: float) -> float:
    c = max_norm / (norm + 1e-6)
    return min(1.0, c)


def groups_of(params: list[np.ndarray], cfg: dict) -> list[dict]:
    return [{"params": params[:N0]}, {"params": params[N0:], "lr": cfg["lr"] * 0.5}]


def clip_by_hand(grads: list[np.ndarray], scope: str, max_norm: float) -> tuple[list[np.ndarray], list[float], float]:
    """(clipped grads, per-scope norms, total norm): each scope's grads times its coefficient."""
    scopes = [grads[:N0], grads[N0:]] if scope == "group" else [grads]
    norms = [norm64(s) for s in scopes]
    out = []
    for s, n in zip(scopes, norms):
        c = coefficient(n, max_norm)
        out.extend(np.asarray(g * g.dtype.type(c)) for g in s)  # (0-d stays an array)
    return out, norms, norm64(grads)


CONFIGS = {"defaults": lambda name: {"lr": 1e-3}, "all-options": lambda name: dict(RICH_CONFIGS[name])}


@pytest.mark.parametrize("scope", ["group", "global"])
@pytest.mark.parametrize("variant", list(CONFIGS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_max_grad_norm_equals_clip_then_step(name: str, dtype: Any, variant: str, scope: str, target: str) -> None:
    cfg = CONFIGS[variant](name)
    params = make_params(SHAPES, dtype, 1)
    stream = dyadic_stream(SHAPES, dtype, 2)
    clipped = OPTIMIZERS[name](groups_of(copies(params), cfg), **cfg, max_grad_norm=MAX_NORM, clip_scope=scope)
    clipped_ref = OPTIMIZERS[name](groups_of(copies(params), cfg), **cfg, max_grad_norm=MAX_NORM, clip_scope=scope,
                                   backend="numpy")
    plain = OPTIMIZERS[name](groups_of(copies(params), cfg), **cfg)
    plain_ref = OPTIMIZERS[name](groups_of(copies(params), cfg), **cfg, backend="numpy")
    exact_ref = target == "baseline"
    n_clipped = 0
    for t, grads in enumerate(stream):
        before = copies(grads)
        by_hand, norms, total = clip_by_hand(grads, scope, MAX_NORM)
        n_clipped += any(coefficient(n, MAX_NORM) < 1 for n in norms)
        clipped.step(grads)
        clipped_ref.step(grads)
        plain.step(by_hand)
        plain_ref.step(by_hand)
        for i, (g, g0) in enumerate(zip(grads, before)):
            assert_same_bits(g, g0, f"step {t}: caller's grad {i}")
        # the norms: exact here (dyadic data), and to 1e-12 relative in general (see below)
        assert clipped.last_grad_norm == total, (clipped.last_grad_norm, total)
        # (the reference's total over groups is sqrt(fsum(norm_g**2)) of the rounded group
        # norms, so it may be 1 ulp off the exact value: within the 1e-12 of the spec)
        assert math.isclose(clipped_ref.last_grad_norm, total, rel_tol=1e-12, abs_tol=0.0)
        if scope == "group":
            assert clipped.last_group_grad_norms == norms
            assert clipped_ref.last_group_grad_norms == norms
        for i, (p, q) in enumerate(zip(clipped.params, plain.params)):
            assert_same_bits(p, q, f"step {t}: native clip vs native on clipped grads, param {i}")
        if exact_ref:
            for i, (p, q, r) in enumerate(zip(clipped.params, plain_ref.params, clipped_ref.params)):
                assert_same_bits(p, q, f"step {t}: native clip vs reference on clipped grads, param {i}")
                assert_same_bits(r, q, f"step {t}: reference clip vs reference on clipped grads, param {i}")
    assert 0 < n_clipped < STEPS, "the data should clip on some steps and not on others"
    assert_snapshot_equal(snapshot(clipped), snapshot(plain), "native clip vs native on clipped grads: ")
    if exact_ref:
        assert_snapshot_equal(snapshot(clipped), snapshot(plain_ref), "native clip vs reference: ")
        assert_snapshot_equal(snapshot(clipped_ref), snapshot(plain_ref), "reference clip vs reference: ")


@pytest.mark.parametrize("name", NAMES)
def test_group_and_global_scopes_differ(name: str) -> None:
    """Sanity for the test above: with groups of different norms, the scopes give different
    results (per-group clipping scales the small group less)."""
    cfg = dict(RICH_CONFIGS[name])
    params = make_params(SHAPES, np.float64, 3)
    grads = dyadic_stream(SHAPES, np.float64, 4)[2]
    grads = [g * 8 if i < N0 else g for i, g in enumerate(grads)]  # group 0 dominates the norm
    runs = {}
    for scope in ("group", "global"):
        opt = OPTIMIZERS[name](groups_of(copies(params), cfg), **cfg, max_grad_norm=1.0, clip_scope=scope)
        opt.step(grads)
        runs[scope] = opt
    assert runs["global"].last_group_grad_norms == []
    assert len(runs["group"].last_group_grad_norms) == 2
    assert runs["group"].last_grad_norm == runs["global"].last_grad_norm
    # (compare the state too: Lion's first update, sign(g), does not see a positive scale)
    differs = [not np.array_equal(p, q) for p, q in zip(runs["group"].params, runs["global"].params)]
    differs += [not np.array_equal(runs["group"].state[k][n], v)
                for k in runs["global"].state for n, v in runs["global"].state[k].items()
                if isinstance(v, np.ndarray) and k >= N0]
    assert any(differs[N0:]), "group 1 should be scaled differently by the two scopes"


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_last_grad_norm_matches_float64_norm_on_generic_data(dtype: Any) -> None:
    """Generic (non-dyadic) gradients, large enough for the native chunked sum: the reported
    norm equals the float64 NumPy norm to 1e-12 relative, for both scopes and every group."""
    shapes = [(100003,), (17,), (4096 * 3 + 5,), ()]
    params = make_params(shapes, dtype, 5)
    grads = make_grad_stream(shapes, dtype, 1, 6)[0]
    for scope in ("group", "global"):
        for backend in ("native", "numpy"):
            groups = [{"params": copies(params[:2])}, {"params": copies(params[2:])}]
            opt = fusedopt.SGD(groups, lr=0.0, max_grad_norm=1.0, clip_scope=scope, backend=backend)
            opt.step(grads)
            expected = norm64(grads)
            assert math.isclose(opt.last_grad_norm, expected, rel_tol=1e-12, abs_tol=0.0), (backend, scope)
            if scope == "group":
                for got, part in zip(opt.last_group_grad_norms, (grads[:2], grads[2:])):
                    assert math.isclose(got, norm64(part), rel_tol=1e-12, abs_tol=0.0)


@pytest.mark.parametrize("scope", ["group", "global"])
def test_native_equals_reference_on_generic_data(scope: str, baseline_target: str) -> None:
    """On generic (non-dyadic) float64 and float32 gradients, mixed in a group, arrays past the
    norm's chunk size, a gradient in another layout than its parameter and a None: the native
    step and the NumPy reference report the same norms and leave the same bits (the reference
    adds the squares in the native pass's order, reference.step_norm)."""
    rng = np.random.default_rng(8)
    shapes = [(4096 * 3 + 5,), (17, 9), (), (300,), (5, 6)]
    dtypes = [np.float64, np.float64, np.float32, np.float32, np.float64]
    params = [rng.uniform(0.5, 2, s).astype(d) for s, d in zip(shapes, dtypes)]
    opts = [fusedopt.Adam([{"params": copies(params[:3])}, {"params": copies(params[3:]), "lr": 2e-3}], lr=1e-3,
                          max_grad_norm=0.7, clip_scope=scope, backend=backend) for backend in ("native", "numpy")]
    for t in range(6):
        grads: list[Any] = [rng.standard_normal(s).astype(d) for s, d in zip(shapes, dtypes)]
        grads[1] = np.asfortranarray(grads[1])
        if t == 2:
            grads[3] = None
        for opt in opts:
            opt.step(grads)
        assert opts[0].last_grad_norm == opts[1].last_grad_norm, t
        assert opts[0].last_group_grad_norms == opts[1].last_group_grad_norms, t
        for i, (p, q) in enumerate(zip(opts[0].params, opts[1].params)):
            assert_same_bits(p, q, f"step {t}, param {i}")


def test_rescaled_norm_of_row_sparse_gradients_sums_repeated_rows_first() -> None:
    """A sum of squares below 2^-900 takes the rescaled path; there too the norm is of the
    gradient's summed rows (a row given twice counts once, as their sum), native and reference."""
    for backend in ("native", "numpy"):
        opt = fusedopt.Adam([np.ones((4, 3))], lr=0.1, max_grad_norm=1.0, backend=backend)
        opt.step([fusedopt.RowSparse(np.array([1, 1]), np.full((2, 3), 1e-200))])
        assert math.isclose(opt.last_grad_norm, 2e-200 * math.sqrt(3), rel_tol=1e-12, abs_tol=0.0), backend


def test_group_norms_aligned_with_param_groups() -> None:
    opt = fusedopt.Adam([{"params": [np.ones(3)]}, {"params": [np.ones(2)]}], max_grad_norm=1.0)
    opt.step([np.ones(3), None])
    assert opt.last_group_grad_norms == [math.sqrt(3.0), 0.0]


def test_group_norms_one_per_group_when_all_have_grads() -> None:
    for backend in ("native", "numpy"):
        opt = fusedopt.Adam([{"params": [np.ones(3)]}, {"params": [np.ones(2)]}], max_grad_norm=1.0,
                            backend=backend)
        opt.step([None, np.ones(2)])
        assert opt.last_group_grad_norms == [0.0, math.sqrt(2.0)], backend
        opt.step([np.ones(3), np.ones(2)])
        assert opt.last_group_grad_norms == [math.sqrt(3.0), math.sqrt(2.0)], backend


def test_no_clip_leaves_norm_unset_and_grads_untouched() -> None:
    opt = fusedopt.Adam([np.ones(3)])
    opt.step([np.full(3, 5.0)])
    assert opt.last_grad_norm is None


# ---------------------------------------------------------------------------------------------
# clip_value
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_clip_value_equals_clamp_then_step(name: str, dtype: Any, target: str) -> None:
    bound = 0.3  # not representable: the kernels clamp at dtype(0.3), so must the reference
    cfg = dict(RICH_CONFIGS[name])
    params = make_params(SHAPES, dtype, 7)
    stream = make_grad_stream(SHAPES, dtype, 4, 8)
    clipped = OPTIMIZERS[name](copies(params), **cfg, clip_value=bound)
    plain = OPTIMIZERS[name](copies(params), **cfg)
    plain_ref = OPTIMIZERS[name](copies(params), **cfg, backend="numpy")
    clipped_ref = OPTIMIZERS[name](copies(params), **cfg, clip_value=bound, backend="numpy")
    t_ = dtype(bound)
    for t, grads in enumerate(stream):
        before = copies(grads)
        by_hand = [np.asarray(np.clip(g, -t_, t_)) for g in grads]
        assert any(not np.array_equal(a, b) for a, b in zip(by_hand, grads))
        for opt, gs in ((clipped, grads), (plain, by_hand), (plain_ref, by_hand), (clipped_ref, grads)):
            opt.step(gs)
        for i, (g, g0) in enumerate(zip(grads, before)):
            assert_same_bits(g, g0, f"step {t}: caller's grad {i}")
        assert clipped.last_grad_norm is None  # value clipping computes no norm
    assert_snapshot_equal(snapshot(clipped), snapshot(plain), "native clip_value vs native on clamped grads: ")
    assert_snapshot_equal(snapshot(clipped_ref), snapshot(plain_ref), "reference clip_value vs clamped grads: ")
    if target == "baseline":
        assert_snapshot_equal(snapshot(clipped), snapshot(plain_ref), "native clip_value vs reference: ")


# ---------------------------------------------------------------------------------------------
# Non-finite gradients
# ---------------------------------------------------------------------------------------------

POSITIONS = {"first": 0, "middle": 2, "last": 4}
BAD_VALUES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _poison(grads: list[np.ndarray], where: str, value: float) -> list[np.ndarray]:
    out = copies(grads)
    g = out[POSITIONS[where]]
    g.reshape(-1)[g.size // 2] = value
    return out


@pytest.mark.parametrize("value", list(BAD_VALUES))
@pytest.mark.parametrize("where", list(POSITIONS))
@pytest.mark.parametrize("clip", [None, 1.0], ids=["noclip", "max_grad_norm"])
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_skip_changes_nothing(name: str, clip: float | None, where: str, value: str, path: str) -> None:
    a = armed(name, path, nonfinite="skip", max_grad_norm=clip)
    bad = _poison(a.grads(2), where, BAD_VALUES[value])
    count = a.opt.step_count
    a.assert_skipped(bad)  # (then one good step, checked against the twin)
    assert a.opt.step_count == count + 1
    assert a.opt.skipped_steps == 1


@pytest.mark.parametrize("value", list(BAD_VALUES))
@pytest.mark.parametrize("where", list(POSITIONS))
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_raise_changes_nothing(name: str, where: str, value: str, path: str) -> None:
    a = armed(name, path, nonfinite="raise")
    bad = _poison(a.grads(2), where, BAD_VALUES[value])
    info = a.assert_rejected(bad, fusedopt.NonFiniteGradientError, r"non-finite gradient .*nothing was updated")
    assert isinstance(info.value, FloatingPointError)
    assert a.opt.skipped_steps == 0


@pytest.mark.parametrize("value", list(BAD_VALUES))
@pytest.mark.parametrize("mode", ["skip", "raise"])
def test_nonfinite_reports_the_norm(mode: str, value: str) -> None:
    opt = fusedopt.Adam(make_params(SHAPES, np.float32, 9), nonfinite=mode)
    bad = _poison(make_grad_stream(SHAPES, np.float32, 1, 10)[0], "middle", BAD_VALUES[value])
    if mode == "raise":
        with pytest.raises(fusedopt.NonFiniteGradientError):
            opt.step(bad)
    else:
        opt.step(bad)
    if value == "nan":
        assert math.isnan(opt.last_grad_norm)
    else:
        assert opt.last_grad_norm == math.inf
    assert opt.step_count == 0 and opt.state == {}
    assert opt.skipped_steps == (1 if mode == "skip" else 0)


@pytest.mark.parametrize("name", NAMES)
def test_skip_on_first_step_creates_no_state(name: str) -> None:
    params = make_params(SHAPES, np.float64, 11)
    opt = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name], nonfinite="skip")
    eager = {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in st.items()}
             for k, st in opt.state.items()}
    opt.step(_poison(make_grad_stream(SHAPES, np.float64, 1, 12)[0], "last", math.nan))
    for p, p0 in zip(opt.params, params):
        assert_same_bits(p, p0, "param")
    assert set(opt.state) == set(eager)  # only Adagrad has state before its first step
    for st in opt.state.values():
        assert st["step"] == 0
    assert opt.skipped_steps == 1 and opt.step_count == 0


# ---------------------------------------------------------------------------------------------
# propagate: like torch, NaN flows into the parameters
# ---------------------------------------------------------------------------------------------


def _nan_aware_equal(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert np.array_equal(np.isnan(a), np.isnan(b)), f"{what}: NaN at different places"
    ok = ~np.isnan(a)
    assert_same_bits(a[ok], b[ok], what)


# Rprop moves by sign(g) * step_size, and torch.sign(NaN) = 0, sign(inf) = 1: its parameters stay
# finite (test_rules_torch.py checks what it does instead).
POISONED = [n for n in NAMES if n != "Rprop"]


@pytest.mark.parametrize("value", list(BAD_VALUES))
@pytest.mark.parametrize("name", POISONED)
def test_propagate_without_clipping_poisons_only_that_element(name: str, value: str, baseline_target: str) -> None:
    """No norm is involved: each element's update sees only its own gradient, so a NaN (or an
    inf, which turns into NaN or inf in the update) reaches exactly that element of the
    parameter, as in torch; native and reference agree (bitwise outside the NaNs)."""
    params = make_params(SHAPES, np.float64, 13)
    grads = make_grad_stream(SHAPES, np.float64, 3, 14)
    native = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name])
    ref = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name], backend="numpy")
    bad = _poison(grads[1], "middle", BAD_VALUES[value])
    for g in (grads[0], bad, grads[2]):
        native.step(g)
        with np.errstate(all="ignore"):  # see test_reference_backend_propagates_silently
            ref.step(g)
    assert native.skipped_steps == 0 and native.step_count == 3
    p = native.params[POSITIONS["middle"]].reshape(-1)
    k = p.size // 2
    assert not np.isfinite(p[k]), f"{name}: the poisoned element should be non-finite, got {p[k]}"
    finite_elsewhere = [np.isfinite(np.delete(q.reshape(-1), k) if i == POSITIONS["middle"] else q).all()
                        for i, q in enumerate(native.params)]
    assert all(finite_elsewhere), f"{name}: non-finite values leaked to other elements"
    for i, (x, y) in enumerate(zip(native.params, ref.params)):
        _nan_aware_equal(x, y, f"param {i}")
    for key in native.state:
        for n, v in native.state[key].items():
            if isinstance(v, np.ndarray):
                _nan_aware_equal(v, ref.state[key][n], f"state[{key}][{n}]")


@pytest.mark.parametrize("name", POISONED)
def test_propagate_with_max_grad_norm_nan_poisons_everything(name: str, baseline_target: str) -> None:
    """torch's clip_grad_norm_ with a NaN total norm multiplies every gradient by NaN, so every
    parameter element becomes NaN (same here, native and reference)."""
    params = make_params(SHAPES, np.float64, 15)
    grads = make_grad_stream(SHAPES, np.float64, 2, 16)
    native = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name], max_grad_norm=1.0, clip_scope="global")
    ref = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name], max_grad_norm=1.0, clip_scope="global",
                           backend="numpy")
    bad = _poison(grads[1], "last", math.nan)
    for g in (grads[0], bad):
        native.step(g)
        with np.errstate(all="ignore"):  # see test_reference_backend_propagates_silently
            ref.step(g)
    assert math.isnan(native.last_grad_norm)
    for i, (x, y) in enumerate(zip(native.params, ref.params)):
        assert np.isnan(x).all(), f"{name}: param {i} should be all NaN"
        _nan_aware_equal(x, y, f"param {i}")


@pytest.mark.torch
@pytest.mark.parametrize("clip", [None, 1.0], ids=["noclip", "max_grad_norm"])
@pytest.mark.parametrize("value", ["nan", "inf"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop"])
def test_propagate_matches_torch(name: str, value: str, clip: float | None) -> None:
    torch = pytest.importorskip("torch")
    cfg = {"SGD": {"lr": 1e-2, "momentum": 0.9}, "Adam": {"lr": 1e-2}, "AdamW": {"lr": 1e-2},
           "Adagrad": {"lr": 1e-2}, "RMSprop": {"lr": 1e-2, "momentum": 0.5}}[name]
    params = make_params(SHAPES, np.float64, 17)
    grads = make_grad_stream(SHAPES, np.float64, 3, 18)
    grads[1] = _poison(grads[1], "first", BAD_VALUES[value])
    ours = OPTIMIZERS[name](copies(params), **cfg, max_grad_norm=clip, clip_scope="global")
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in params]
    theirs = getattr(torch.optim, name)(tparams, **cfg)
    for g in grads:
        ours.step(g)
        for tp, gi in zip(tparams, g):
            tp.grad = torch.tensor(gi.copy())
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(tparams, clip)
        theirs.step()
    for i, (p, tp) in enumerate(zip(ours.params, tparams)):
        t = tp.detach().numpy()
        assert np.array_equal(np.isnan(p), np.isnan(t)), f"param {i}: NaN at different places"
        assert np.array_equal(np.isinf(p), np.isinf(t)), f"param {i}: inf at different places"
        ok = np.isfinite(t)
        np.testing.assert_allclose(p[ok], t[ok], rtol=1e-10, atol=1e-12, err_msg=f"param {i}")
    assert not np.isfinite(ours.params[0]).all()


def test_native_backend_propagates_silently() -> None:
    """No warning (the suite turns warnings into errors) from a non-finite gradient."""
    for value in (math.inf, math.nan):
        opt = fusedopt.Adam([np.ones(3), np.ones(3)], lr=0.1)
        opt.step([np.ones(3), np.array([1.0, value, 1.0])])
        assert np.isnan(opt.params[1][1]) and opt.step_count == 1


def test_reference_backend_propagates_silently() -> None:
    params = [np.ones(3), np.ones(3), np.ones(3)]
    opt = fusedopt.Adam(params, lr=0.1, backend="numpy")
    opt.step([np.ones(3), np.array([1.0, math.inf, 1.0]), np.ones(3)])
    assert opt.step_count == 1 and np.isnan(params[1][1])
