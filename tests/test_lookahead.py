"""Lookahead: against pytorch_optimizer's Lookahead (live, over 30 steps with None gradients,
including at a sync step), the native pass against the NumPy reference, state_dict / pickle /
deepcopy, schedulers driving the wrapper, threads, and bad input."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import DTYPES, assert_same_bits, check_ulp_bound, make_grad_stream, make_params, using_threads
from fusedopt import _core, reference

SHAPES = [(3, 2), (17,), (), (1000,), (1,)]
STEPS = 30
NONE_AT = {9: (1,), 10: (0, 3), 14: (2,)}  # step -> params without a gradient (9 and 14 are sync steps of k=5)
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-10, 1e-12)}  # the torch-parity suite's (tests/parity/conftest.py)


def stream(dtype: Any, steps: int = STEPS, seed: int = 3) -> list[list[Any]]:
    rows = make_grad_stream(SHAPES, dtype, steps, seed)
    return [[None if i in NONE_AT.get(t, ()) else g for i, g in enumerate(row)] for t, row in enumerate(rows)]


def build(inner: str, kw: dict[str, Any], params: list[np.ndarray], k: int = 5, alpha: float = 0.5) -> fusedopt.Lookahead:
    return fusedopt.Lookahead(getattr(fusedopt, inner)(params, **kw), k=k, alpha=alpha)


INNERS = [("SGD", {"lr": 0.05}), ("SGD", {"lr": 0.05, "momentum": 0.9}), ("Adam", {"lr": 1e-2}),
          ("AdamW", {"lr": 1e-2, "weight_decay": 0.1})]


# ---------------------------------------------------------------------------------------------
# Against pytorch_optimizer
# ---------------------------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inner,kw", INNERS, ids=[f"{n}-{'-'.join(map(str, k.values()))}" for n, k in INNERS])
@pytest.mark.parametrize("k,alpha", [(5, 0.5), (3, 0.8), (1, 0.3)])
def test_matches_pytorch_optimizer(target: str, dtype: Any, inner: str, kw: dict[str, Any], k: int, alpha: float) -> None:
    """Bit for bit on the FMA targets where the inner update has no sqrt (SGD: torch's add and
    lerp are fused there, as fusedopt's); otherwise to the parity suite's tolerance (torch's
    sqrt is not correctly rounded; the baseline target rounds torch's fused ops twice)."""
    torch = pytest.importorskip("torch")
    tla = pytest.importorskip("pytorch_optimizer").Lookahead
    params = make_params(SHAPES, dtype, 1)
    tp = [torch.tensor(p.copy()) for p in params]
    ours = build(inner, kw, [p.copy() for p in params], k, alpha)
    theirs = tla(getattr(torch.optim, inner)(tp, **kw), k=k, alpha=alpha)
    exact = target != "baseline" and inner == "SGD"
    rtol, atol = TOL[dtype]
    for t, row in enumerate(stream(dtype)):
        for p, g in zip(tp, row):
            p.grad = None if g is None else torch.tensor(g.copy())
        theirs.step()
        ours.step(row)
        slow_t = [theirs.state[p]["slow_params"].numpy() for p in tp]
        for i, (a, b) in enumerate([*zip(ours.params, [p.numpy() for p in tp]), *zip(ours.slow_params, slow_t)]):
            what = f"step {t + 1} {'param' if i < len(tp) else 'slow'} {i % len(tp)}"
            if exact:
                assert_same_bits(a, b, what)
            else:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)
        assert [g["lookahead_counter"] for g in ours.param_groups] == [g["counter"] for g in theirs.param_groups]


# ---------------------------------------------------------------------------------------------
# The native pass against the NumPy reference
# ---------------------------------------------------------------------------------------------

OPS = [("lerp", 0.3), ("lerp", 0.75), ("lerp_sync", 0.5), ("lerp_sync", 0.1), ("div", 3.0), ("copy", 0.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op,w", OPS)
@pytest.mark.parametrize("sizes", [(0, 1, 7, 33), (1000, 16, 17), (100003,)])
def test_blend_matches_reference(target: str, dtype: Any, op: str, w: float, sizes: tuple[int, ...]) -> None:
    """Bitwise on baseline; one FMA (lerp) within 3 ulp elsewhere; div and copy bitwise everywhere."""
    shapes = [(n,) for n in sizes] + [()]
    a = make_params(shapes, dtype, 5)
    b = make_params(shapes, dtype, 6)
    ra, rb = [x.copy() for x in a], [x.copy() for x in b]
    floor = [np.maximum(np.abs(x), np.abs(y)) for x, y in zip(a, b)]
    _core.blend_(a, b, w, op)
    reference.blend(ra, rb, w, op)
    for x, y, rx, ry, f in zip(a, b, ra, rb, floor):
        if target == "baseline" or op in ("div", "copy"):
            assert_same_bits(x, rx, op)
            assert_same_bits(y, ry, op)
        else:
            check_ulp_bound(x, rx, f, 3, where=f"{op} ")  # one FMA: 1.5 ulp of the largest term
            assert_same_bits(y, x if op == "lerp_sync" else ry, op)


def test_blend_per_pair_weights_and_mixed_dtypes(baseline_target: str) -> None:
    a = [np.full(5, 1.0, np.float32), np.full(3, 1.0), np.full(4, 1.0, np.float32)]
    b = [np.full(5, 3.0, np.float32), np.full(3, 3.0), np.full(4, 3.0, np.float32)]
    _core.blend_(a, b, [0.5, 0.25, 0.75], "lerp")
    assert [x[0] for x in a] == [2.0, 1.5, 2.5]
    assert a[0].dtype == np.float32 and a[1].dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_blend_same_bits_on_any_thread_count(dtype: Any) -> None:
    shapes = [(70000,), (33,), (200001,)]
    a, b = make_params(shapes, dtype, 7), make_params(shapes, dtype, 8)
    a1, b1 = [x.copy() for x in a], [x.copy() for x in b]
    with using_threads(1):
        _core.blend_(a1, b1, 0.3, "lerp_sync")
    with using_threads(2, min_parallel=1024):
        _core.blend_(a, b, 0.3, "lerp_sync")
    for x, y in zip(a + b, a1 + b1):
        assert_same_bits(x, y, "threads")


ml_dtypes = pytest.importorskip("ml_dtypes")
LOW = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


@pytest.mark.parametrize("dtype", list(LOW))
@pytest.mark.parametrize("b_dtype", ["same", "float32"])
@pytest.mark.parametrize("op,w", OPS)
def test_blend_sixteen_bit_matches_reference(target: str, dtype: str, b_dtype: str, op: str, w: float) -> None:
    """16-bit `a` with `b` of its dtype or float32 (a Schedule-Free parameter and its z): float32
    arithmetic, a rounded once. Bitwise on baseline; elsewhere lerp's FMA may land the float32
    result on the other side of a rounding boundary: one 16-bit rounding apart at most."""
    dt = LOW[dtype]
    bdt = dt if b_dtype == "same" else np.float32
    shapes = [(n,) for n in (1, 7, 33, 1000)] + [()]
    a = [x.astype(dt) for x in make_params(shapes, np.float32, 5)]
    b = [x.astype(bdt) for x in make_params(shapes, np.float32, 6)]
    ra, rb = [x.copy() for x in a], [x.copy() for x in b]
    _core.blend_(a, b, w, op)
    reference.blend(ra, rb, w, op)
    for x, y, rx, ry in zip(a, b, ra, rb):
        assert x.dtype == dt and y.dtype == bdt
        if target == "baseline" or op in ("div", "copy"):
            assert_same_bits(x, rx, op)
        else:
            top = np.maximum(np.abs(x.astype(np.float32)), np.abs(rx.astype(np.float32)))
            spacing = np.spacing(top.astype(dt)).astype(np.float64)
            assert (np.abs(x.astype(np.float64) - rx.astype(np.float64)) <= spacing).all(), f"{op}: over one rounding"
        assert_same_bits(y, x.astype(bdt) if op == "lerp_sync" else ry, op)


@pytest.mark.parametrize("dtype", list(LOW))
def test_lookahead_over_sixteen_bit_parameters(baseline_target: str, dtype: str) -> None:
    """The slow weights are copies in the parameters' dtype; each sync is the blend's float32
    lerp, rounded once: the inner optimizer stepped alone plus reference.blend at every k-th
    step gives the same bits (baseline), and the wrapper pickles and continues bitwise."""
    dt = LOW[dtype]
    params = [x.astype(dt) for x in make_params([(17,), (3, 4)], np.float32, 8)]
    grads = [[g.astype(dt) for g in row] for row in make_grad_stream([(17,), (3, 4)], np.float32, 9, 9)]
    la = build("Adam", {"lr": 1e-2}, [p.copy() for p in params], k=3, alpha=0.5)
    inner = fusedopt.Adam([p.copy() for p in params], lr=1e-2)
    slow = [p.copy() for p in params]
    for t, g in enumerate(grads):
        la.step(g)
        inner.step(g)
        if (t + 1) % 3 == 0:
            reference.blend(inner.params, slow, 0.5, "lerp_sync")
        for x, y in zip(la.params, inner.params):
            assert_same_bits(x, y, f"step {t + 1}")
    assert all(s.dtype == dt for s in la.slow_params)
    twin = pickle.loads(pickle.dumps(la))
    la.step(grads[0])
    twin.step(grads[0])
    for x, y in zip(la.params, twin.params):
        assert_same_bits(x, y, "after pickling")


BAD_BLEND = [
    (lambda a, b: ([a[0]], b, 0.5, "lerp"), ValueError, "b: expected 1 arrays"),
    (lambda a, b: (a, b, [0.5], "lerp"), ValueError, "weights: expected 2"),
    (lambda a, b: (a, b, 0.5, "avg"), ValueError, "op: must be one of"),
    (lambda a, b: (a, [b[0], b[1].astype(np.float32)], 0.5, "lerp"), TypeError, r"b\[1\]: dtype float32 does not match"),
    (lambda a, b: (a, [b[0], b[1][:2]], 0.5, "lerp"), ValueError, r"b\[1\]: shape \(2,\) does not match"),
    (lambda a, b: (a, [b[0], a[1]], 0.5, "lerp"), ValueError, r"a\[1\] and b\[1\] share memory"),
    (lambda a, b: ([a[0], a[0][:3]], b, 0.5, "lerp"), ValueError, r"a\[0\] and a\[1\] share memory"),
    (lambda a, b: ([a[0], a[1].astype(np.int32)], b, 0.5, "lerp"), TypeError, r"a\[1\]: dtype int32"),
    (lambda a, b: (a, b, "x", "lerp"), TypeError, "weights: expected real numbers"),
    (lambda a, b: (a, [b[0], b[1][::2]], 0.5, "lerp"), ValueError, r"b\[1\]: must be C-contiguous"),
]


@pytest.mark.parametrize("make,exc,match", BAD_BLEND)
def test_blend_bad_input_changes_nothing(make: Any, exc: type, match: str) -> None:
    a = [np.arange(4.0), np.arange(3.0)]
    b = [np.ones(4), np.ones(3)]
    args = make(a, b)
    before = [x.copy() for x in a + b]
    with pytest.raises(exc, match=match):
        _core.blend_(*args)
    for x, y in zip(a + b, before):
        assert_same_bits(x, y, "unchanged")


def test_blend_read_only_b_is_refused_only_when_written() -> None:
    a, b = [np.zeros(3)], [np.ones(3)]
    b[0].flags.writeable = False
    _core.blend_(a, b, 0.5, "lerp")
    with pytest.raises(ValueError, match=r"slow\[0\]: is read-only"):
        _core.blend_(a, b, 0.5, "lerp_sync", names=("fast", "slow"))


# ---------------------------------------------------------------------------------------------
# The wrapper
# ---------------------------------------------------------------------------------------------


def run(la: Any, rows: list[list[Any]]) -> None:
    for row in rows:
        la.step(row)


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_backend_inner_equals_native_on_baseline(baseline_target: str, dtype: Any) -> None:
    params = make_params(SHAPES, dtype, 1)
    a = fusedopt.Lookahead(fusedopt.Adam([p.copy() for p in params], lr=1e-2), k=4, alpha=0.6)
    b = fusedopt.Lookahead(fusedopt.Adam([p.copy() for p in params], lr=1e-2, backend="numpy"), k=4, alpha=0.6)
    rows = stream(dtype)
    run(a, rows)
    run(b, rows)
    for x, y in zip(a.params + a.slow_params, b.params + b.slow_params):
        assert_same_bits(x, y, "native vs numpy")


def test_sync_is_the_formula() -> None:
    """After k steps: slow = slow0 + alpha * (fast_k - slow0), fast = slow (torch.lerp's rounding)."""
    p = np.array([1.0, -2.0, 4.0])
    la = fusedopt.Lookahead(fusedopt.SGD([p], lr=1.0), k=2, alpha=0.25)
    g = np.array([1.0, 1.0, -2.0])
    la.step([g])
    np.testing.assert_array_equal(p, [0.0, -3.0, 6.0])
    np.testing.assert_array_equal(la.slow_params[0], [1.0, -2.0, 4.0])
    la.step([g])  # fast = [-1, -4, 8]; slow = 1 + 0.25*(-2) ...
    np.testing.assert_array_equal(p, [0.5, -2.5, 5.0])
    np.testing.assert_array_equal(la.slow_params[0], p)
    assert la.param_groups[0]["lookahead_counter"] == 0


@pytest.mark.parametrize("named", [False, True])
def test_state_dict_round_trip_continues_bitwise(named: bool) -> None:
    params = make_params(SHAPES, np.float32, 1)
    mk = (lambda ps: {f"w{i}": p for i, p in enumerate(ps)}) if named else (lambda ps: ps)
    rows = stream(np.float32)
    if named:
        rows = [{f"w{i}": g for i, g in enumerate(r) if g is not None} for r in rows]
    a = build("AdamW", {"lr": 1e-2}, mk([p.copy() for p in params]), k=4)
    run(a, rows[:7])
    sd = a.state_dict()
    b = build("AdamW", {"lr": 1e-2}, mk([p.copy() for p in params]), k=4)
    b.load_state_dict(sd)
    assert b.param_groups[0]["lookahead_counter"] == 3
    for x, y in zip(a.params, b.params):
        y[...] = x  # the parameters are the user's arrays, not the state
    run(a, rows[7:])
    run(b, rows[7:])
    for x, y in zip(a.params + a.slow_params, b.params + b.slow_params):
        assert_same_bits(x, y, "resumed")
    # state_dict holds copies
    sd["slow_params"][next(iter(sd["slow_params"]))][...] = 7
    assert not (a.slow_params[0] == 7).any()


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_continue_bitwise(how: str) -> None:
    la = build("SGD", {"lr": 0.05, "momentum": 0.9}, make_params(SHAPES, np.float64, 1), k=3)
    rows = stream(np.float64)
    run(la, rows[:5])
    twin = pickle.loads(pickle.dumps(la)) if how == "pickle" else copy.deepcopy(la)
    assert all(x is not y for x, y in zip(la.params, twin.params))
    run(la, rows[5:])
    run(twin, rows[5:])
    for x, y in zip(la.params + la.slow_params, twin.params + twin.slow_params):
        assert_same_bits(x, y, how)


def test_scheduler_on_the_wrapper_drives_the_inner_optimizer() -> None:
    inner = fusedopt.SGD(make_params(SHAPES, np.float32, 1), lr=0.1)
    la = fusedopt.Lookahead(inner, k=2)
    assert la.param_groups is inner.param_groups
    sched = fusedopt.schedules.StepLR(la, step_size=2, gamma=0.5)
    for row in stream(np.float32)[:4]:
        la.step(row)
        sched.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.025)


def test_add_param_group_gets_slow_weights_and_its_own_counter() -> None:
    la = build("SGD", {"lr": 0.1}, [np.ones(3)], k=2)
    la.step([np.ones(3)])
    extra = np.full(2, 5.0)
    la.add_param_group({"params": [extra], "lr": 1.0})
    assert la.param_groups[1]["lookahead_counter"] == 0
    la.step([np.ones(3), np.ones(2)])  # group 0 syncs, group 1 does not yet
    np.testing.assert_array_equal(la.slow_params[1], [5.0, 5.0])
    np.testing.assert_array_equal(la.params[0], la.slow_params[0])
    la.step([np.ones(3), np.ones(2)])
    np.testing.assert_array_equal(la.slow_params[1], [4.0, 4.0])  # 5 + 0.5*(3 - 5)


def test_skipped_step_is_not_counted() -> None:
    la = fusedopt.Lookahead(fusedopt.SGD([np.ones(3)], lr=0.1, nonfinite="skip"), k=2)
    la.step([np.ones(3)])
    la.step([np.array([np.nan, 1.0, 1.0])])
    assert la.optimizer.skipped_steps == 1
    assert la.param_groups[0]["lookahead_counter"] == 1


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"k": 0}, ValueError, "k: must be >= 1"),
    ({"k": 2.0}, TypeError, "k: expected an int"),
    ({"k": True}, TypeError, "k: expected an int"),
    ({"alpha": 1.5}, ValueError, r"alpha: must be in \[0, 1\]"),
    ({"alpha": float("nan")}, ValueError, "alpha"),
    ({"alpha": "0.5"}, TypeError, "alpha: expected a number"),
])
def test_bad_arguments(kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        fusedopt.Lookahead(fusedopt.SGD([np.ones(3)], lr=0.1), **kwargs)


def test_not_a_fusedopt_optimizer() -> None:
    with pytest.raises(TypeError, match="optimizer: expected a fusedopt optimizer"):
        fusedopt.Lookahead(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("mutate,exc,match", [
    (lambda sd: sd.pop("slow_params"), ValueError, "expected 'optimizer' and 'slow_params'"),
    (lambda sd: sd["slow_params"].pop(0), ValueError, "'slow_params' has keys"),
    (lambda sd: sd["slow_params"].__setitem__(1, np.zeros(3)), ValueError, r"slow_params\[1\].*shape"),
    (lambda sd: sd["slow_params"].__setitem__(1, np.zeros(17, complex)), TypeError, "dtype complex"),
    (lambda sd: sd["optimizer"]["param_groups"][0].__setitem__("lr", "x"), TypeError, "lr"),
])
def test_load_state_dict_bad_changes_nothing(mutate: Any, exc: type, match: str) -> None:
    la = build("Adam", {"lr": 1e-2}, make_params(SHAPES, np.float32, 1), k=3)
    run(la, stream(np.float32)[:4])
    sd = la.state_dict()
    mutate(sd)
    before = [x.copy() for x in la.params + la.slow_params]
    state_before = la.optimizer.state_dict()
    with pytest.raises(exc, match=match):
        la.load_state_dict(sd)
    for x, y in zip(la.params + la.slow_params, before):
        assert_same_bits(x, y, "unchanged")
    assert la.optimizer.state_dict()["param_groups"] == state_before["param_groups"]


def test_bad_step_changes_nothing() -> None:
    la = build("SGD", {"lr": 0.1}, [np.ones(3), np.ones(2)], k=1)
    with pytest.raises(ValueError, match="grads"):
        la.step([np.ones(3), np.ones(5)])
    assert la.param_groups[0]["lookahead_counter"] == 0
    np.testing.assert_array_equal(la.params[0], np.ones(3))
