"""The boundary's contract, property-based: hypothesis generates bad inputs of every kind issue
13 lists (wrong types, values out of range, numbers past float64, non-bool flags, bad arrays and
array subclasses, corrupt state dicts) for every public entry point, and each must

* raise the exception class its kind calls for (TypeError for a wrong type, ValueError for a
  wrong value), never OverflowError, KeyError, AttributeError, ZeroDivisionError;
* name the argument (and the parameter, where there is one) in the message;
* change nothing: a SHA-256 of every parameter and state array (bytes), every state scalar,
  every param group's hyperparameters, and the counters, is the same before and after.

Deterministic (derandomize, no example database) and sized to run in well under a minute.
The hand-written regression table for the same contract is test_bad_inputs.py.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import OPTIMIZERS, RICH_CONFIGS
from fusedopt import schedules

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = 300
CONTRACT = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
NAMES = list(OPTIMIZERS)
SHAPES = [(5,), (2, 3), (4,)]  # group 0: the first two; group 1: the last


# ---------------------------------------------------------------------------------------------
# Bad values, each paired with the exception class it must raise
# ---------------------------------------------------------------------------------------------


def raising(strategy: st.SearchStrategy, exc: type[Exception]) -> st.SearchStrategy:
    return strategy.map(lambda v: (v, exc))


NOT_A_NUMBER = raising(st.one_of(
    st.text(max_size=4), st.none(), st.booleans(), st.sampled_from([np.bool_(True), b"1", {}, object()]),
    st.complex_numbers(allow_nan=False, allow_infinity=False).filter(lambda z: z.imag != 0),
    st.lists(st.floats(allow_nan=False), min_size=1, max_size=3), st.just(np.array([0.1, 0.2])),
), TypeError)
PAST_FLOAT64 = raising(st.integers(min_value=2**1024, max_value=2**1400) | st.integers(max_value=-2**1024,
                                                                                      min_value=-2**1400), ValueError)
NEGATIVE = raising(st.one_of(st.floats(max_value=-1e-300), st.integers(max_value=-1, min_value=-2**70),
                             st.just(math.nan), st.just(np.float32(-0.5))), ValueError)
NOT_IN_UNIT = raising(st.floats(min_value=1.0) | st.just(math.nan) | st.floats(max_value=-1e-300), ValueError)
NOT_A_FLAG = raising(st.one_of(st.text(max_size=4), st.integers(), st.floats(), st.none(),
                               st.sampled_from([np.array([True]), np.float64(1.0), np.int8(0), [True], "no"])),
                     TypeError)
NOT_A_PAIR = raising(st.one_of(st.floats(), st.none(), st.text(max_size=3), st.tuples(st.floats(0, 0.5)),
                               st.tuples(st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0, 0.5))), ValueError)
NOT_A_COUNT = st.one_of(
    raising(st.integers(max_value=-1, min_value=-2**70) | st.integers(min_value=2**63), ValueError),
    raising(st.floats(min_value=0.01, max_value=1e6).filter(lambda f: f != int(f)) | st.sampled_from(
        [math.nan, math.inf, -1.0, 1e300]), ValueError),
    raising(st.one_of(st.text(max_size=3), st.none(), st.booleans(), st.complex_numbers(allow_nan=False),
                      st.lists(st.integers(0, 3), min_size=2, max_size=3)), TypeError),
)


def bad_hyperparameter(default: Any, hp: str, at_construction: bool) -> st.SearchStrategy:
    """Values of `hp` that are wrong wherever they are given (lr < 0 only at construction: torch
    checks it there alone)."""
    if isinstance(default, bool):
        return NOT_A_FLAG
    if isinstance(default, tuple) and hp in PAIRS:
        good, first, second = PAIRS[hp]
        return st.one_of(NOT_A_PAIR,
                         st.one_of(NOT_A_NUMBER, PAST_FLOAT64, raising(first, ValueError)).map(
                             lambda b: ((b[0], good[1]), b[1])),
                         st.one_of(NOT_A_NUMBER, PAST_FLOAT64, raising(second, ValueError)).map(
                             lambda b: ((good[0], b[0]), b[1])))
    if isinstance(default, tuple):
        return st.one_of(NOT_A_PAIR, st.tuples(st.one_of(NOT_A_NUMBER, PAST_FLOAT64, NOT_IN_UNIT),
                                               st.booleans()).map(_in_pair))
    if isinstance(default, str):
        return raising(st.text(max_size=6).filter(lambda s: s not in ("torch", "classic", "hat")) | st.none(),
                       ValueError)
    if hp == "lr" and not at_construction:
        return st.one_of(NOT_A_NUMBER, PAST_FLOAT64)
    return st.one_of(NOT_A_NUMBER, PAST_FLOAT64, NEGATIVE)


# Pairs other than betas (both in [0, 1)): a good pair, and bad values for its first and its
# second element (Rprop: 0 < etas[0] < 1 < etas[1], 0 <= step_sizes[0] <= step_sizes[1]).
PAIRS: dict[str, tuple[tuple[float, float], st.SearchStrategy, st.SearchStrategy]] = {
    "etas": ((0.5, 1.2), st.floats(min_value=1.0) | st.floats(max_value=0.0) | st.just(math.nan),
             st.floats(max_value=1.0) | st.just(math.nan)),
    "step_sizes": ((1e-6, 50.0), st.floats(min_value=50.5) | st.floats(max_value=-1e-300) | st.just(math.nan),
                   st.floats(max_value=1e-7) | st.just(math.nan)),
}


def _in_pair(bad_and_side: tuple[tuple[Any, type], bool]) -> tuple[Any, type]:
    (value, exc), first = bad_and_side
    return ((value, 0.9) if first else (0.5, value)), exc


HYPERS = [(n, hp) for n in NAMES for hp, v in OPTIMIZERS[n]([np.ones(1)]).defaults.items() if not callable(v)]


# ---------------------------------------------------------------------------------------------
# Bad arrays, made to fit (or not) a parameter of a given shape and dtype
# ---------------------------------------------------------------------------------------------


class _Tagged(np.ndarray):
    pass


def _misaligned(shape: tuple, dtype: Any) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.zeros(n + 1, np.uint8)[1:].view(dtype).reshape(shape)


BAD_ARRAYS: dict[str, tuple[Callable[[tuple, Any], Any], type[Exception]]] = {
    "int64": (lambda s, d: np.ones(s, np.int64), TypeError),
    "int16": (lambda s, d: np.ones(s, np.int16), TypeError),  # (float16 is a parameter dtype)
    "complex": (lambda s, d: np.ones(s, np.complex128), TypeError),
    "bool": (lambda s, d: np.ones(s, bool), TypeError),
    "object": (lambda s, d: np.ones(s, object), TypeError),
    "other-float": (lambda s, d: np.ones(s, np.float64 if d == np.float32 else np.float32), TypeError),
    "masked": (lambda s, d: np.ma.masked_array(np.ones(s, d), mask=np.ones(s, bool)), TypeError),
    "subclass": (lambda s, d: np.ones(s, d).view(_Tagged), TypeError),
    "list": (lambda s, d: np.ones(s, d).tolist(), TypeError),
    "scalar": (lambda s, d: 1.0, TypeError),
    "string": (lambda s, d: "grad", TypeError),
    "wrong-shape": (lambda s, d: np.ones((int(np.prod(s)) + 1,), d), ValueError),
    "transposed": (lambda s, d: np.ones(s[::-1], d), ValueError),
    "strided": (lambda s, d: np.ones(s + (2,), d)[..., 0], ValueError),
    "fortran": (lambda s, d: np.asfortranarray(np.ones(s, d)), ValueError),
    "misaligned": (_misaligned, ValueError),
    "byteswapped": (lambda s, d: np.ones(s, np.dtype(d).newbyteorder()), ValueError),
}
SQUARE_SAFE = {"transposed", "fortran"}  # fine for a 1-d (or square) shape: skipped there


def bad_array_kinds(exclude: set[str] = frozenset()) -> st.SearchStrategy:
    return st.sampled_from(sorted(set(BAD_ARRAYS) - set(exclude)))


# ---------------------------------------------------------------------------------------------
# What must not change
# ---------------------------------------------------------------------------------------------


def built(name: str, dtype: Any = np.float32, named: bool = False, **options: Any) -> tuple[Any, list]:
    """`name` with RICH_CONFIGS over two param groups, stepped twice (state and counters exist)."""
    rng = np.random.default_rng(7)
    ps = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in SHAPES]
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    cfg = dict(RICH_CONFIGS[name], **options)
    if named:
        groups = [{"params": {"a": ps[0], "b": ps[1]}}, {"params": {"c": ps[2]}, "lr": cfg["lr"] / 2}]
        grads_in: Any = dict(zip("abc", grads))
    else:
        groups = [{"params": ps[:2]}, {"params": ps[2:]}]
        grads_in = grads
    opt = OPTIMIZERS[name](groups, **cfg)
    opt.step(grads_in)
    opt.step(grads_in)
    return opt, grads


def fingerprint(opt: Any) -> tuple[str, int, int, int]:
    """SHA-256 over every parameter and state array's bytes, every state scalar and every group's
    hyperparameters; with step_count, skipped_steps and the number of groups. Read without
    handing the state out (the optimizer stays on its own counters)."""
    h = hashlib.sha256()
    for p in opt.params:
        h.update(p.tobytes())
    state, _, step_count, skipped = opt._engine.snapshot(copy_arrays=False)
    for key in sorted(state, key=repr):
        for entry in sorted(state[key]):
            v = state[key][entry]
            h.update(f"{key!r}/{entry}=".encode())
            h.update(v.tobytes() if isinstance(v, np.ndarray) else repr(v).encode())
    for g in opt.param_groups:
        h.update(repr(sorted((k, v) for k, v in g.items() if k != "params")).encode())
    return h.hexdigest(), step_count, skipped, len(opt.param_groups)


def arrays_fingerprint(arrays: list) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.asarray(a).tobytes() if isinstance(a, np.ndarray) else repr(a).encode())
    return h.hexdigest()


def assert_contract(call: Callable[[], Any], exc: type[Exception], names: tuple[str, ...],
                    state: Callable[[], Any]) -> None:
    """call() raises exactly the class `exc` (or a subclass), with one of `names` in its message,
    and state() is the same before and after."""
    before = state()
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    assert isinstance(info.value, exc), f"{type(info.value).__name__} instead of {exc.__name__}: {info.value}"
    message = str(info.value)
    assert any(n in message for n in names), f"none of {names} in {message!r}"
    assert state() == before, f"changed by a call that raised {type(info.value).__name__}: {message}"


# ---------------------------------------------------------------------------------------------
# Hyperparameters: constructor, between steps, add_param_group, load_state_dict
# ---------------------------------------------------------------------------------------------


@CONTRACT
@given(data=st.data(), case=st.sampled_from(HYPERS))
def test_bad_hyperparameter_in_constructor(data: st.DataObject, case: tuple[str, str]) -> None:
    name, hp = case
    value, exc = data.draw(bad_hyperparameter(OPTIMIZERS[name]([np.ones(1)]).defaults[hp], hp, True))
    param = inspect.signature(OPTIMIZERS[name]).parameters.get(hp)
    if value is None and param is not None and param.default is None:
        return  # None asks the constructor for the class's default (Adam's decoupled_weight_decay)
    p = np.ones(3, np.float32)
    assert_contract(lambda: OPTIMIZERS[name]([p], **{hp: value}), exc, (hp,), lambda: p.tobytes())


@CONTRACT
@given(data=st.data(), case=st.sampled_from(HYPERS), where=st.sampled_from(["step", "add", "load"]))
def test_bad_hyperparameter_after_construction(data: st.DataObject, case: tuple[str, str], where: str) -> None:
    name, hp = case
    opt, grads = built(name)
    value, exc = data.draw(bad_hyperparameter(opt.defaults[hp], hp, False))
    group = opt.param_groups[1]
    if where == "step":
        good = group[hp]

        def call() -> None:
            group[hp] = value
            try:
                opt.step(grads)
            finally:
                group[hp] = good
    elif where == "add":
        def call() -> None:
            opt.add_param_group({"params": [np.ones(3, np.float32)], hp: value})
    else:
        sd = opt.state_dict()
        sd["param_groups"][1][hp] = value

        def call() -> None:
            opt.load_state_dict(sd)
    assert_contract(call, exc, (f"{hp}",), lambda: fingerprint(opt))
    opt.step(grads)  # and it still steps


# ---------------------------------------------------------------------------------------------
# Gradients, params
# ---------------------------------------------------------------------------------------------


@CONTRACT
@given(name=st.sampled_from(NAMES), kind=bad_array_kinds(exclude={"strided", "fortran"}), index=st.integers(0, 2),
       dtype=st.sampled_from([np.float32, np.float64]), handed_out=st.booleans(), named=st.booleans())
def test_bad_grad(name: str, kind: str, index: int, dtype: Any, handed_out: bool, named: bool) -> None:
    if kind in SQUARE_SAFE and len(set(SHAPES[index])) == 1:
        return
    opt, grads = built(name, dtype, named)
    if handed_out:
        _ = opt.state  # the step then re-reads every state dict
    make, exc = BAD_ARRAYS[kind]
    grads[index] = make(SHAPES[index], dtype)
    given_grads: Any = dict(zip("abc", grads)) if named else grads
    label = repr("abc"[index]) if named else str(index)
    assert_contract(lambda: opt.step(given_grads), exc, (f"grads for parameter {label}",), lambda: fingerprint(opt))


@CONTRACT
@given(name=st.sampled_from(NAMES), index=st.integers(0, 2), target=st.sampled_from(["param", "state"]))
def test_grad_sharing_memory_with_what_is_written(name: str, index: int, target: str) -> None:
    opt, grads = built(name)
    if target == "param":
        grads[index] = opt.params[index]
    else:
        # (a gradient's shape: Adafactor's row/column factors of a matrix have another)
        shape = opt.params[index].shape
        arrays = [v for v in opt.state[index].values() if isinstance(v, np.ndarray) and v.shape == shape]
        if not arrays:
            return
        grads[index] = arrays[0]
    assert_contract(lambda: opt.step(grads), ValueError, ("share memory",), lambda: fingerprint(opt))


@CONTRACT
@given(grads=st.one_of(st.none(), st.integers(), st.text(max_size=3), st.just({"x": np.ones(5)}),
                       st.lists(st.none(), min_size=0, max_size=5).filter(lambda g: len(g) != 3)))
def test_bad_grads_structure(grads: Any) -> None:
    opt, _ = built("Adam")
    exc = ValueError if isinstance(grads, list) else TypeError
    assert_contract(lambda: opt.step(grads), exc, ("grads",), lambda: fingerprint(opt))


@CONTRACT
@given(name=st.sampled_from(NAMES), kind=bad_array_kinds(exclude={"other-float", "wrong-shape", "transposed", "fortran"})
       | st.just("read-only"), where=st.sampled_from(["constructor", "add"]))
def test_bad_param(name: str, kind: str, where: str) -> None:
    if kind == "read-only":
        bad: Any = np.ones((3, 2), np.float32)
        bad.flags.writeable = False
        exc: type[Exception] = ValueError
    else:
        make, exc = BAD_ARRAYS[kind]
        bad = make((3, 2), np.float32)
    good = np.linspace(-1, 1, 4, dtype=np.float32)
    if where == "constructor":
        assert_contract(lambda: OPTIMIZERS[name]([good, bad]), exc, ("params[1]",), lambda: good.tobytes())
    else:
        opt, _ = built(name)
        assert_contract(lambda: opt.add_param_group({"params": [good, bad]}), exc, ("params[1]",),
                        lambda: (fingerprint(opt), good.tobytes()))


# ---------------------------------------------------------------------------------------------
# load_state_dict: every counter, state entry and structural element, all or nothing
# ---------------------------------------------------------------------------------------------

STATE_TARGETS = ["step_count", "skipped_steps", "step", "mu_product", "array", "array-kind", "structure"]


@CONTRACT
@given(data=st.data(), name=st.sampled_from(NAMES), target=st.sampled_from(STATE_TARGETS), param=st.integers(0, 2))
def test_bad_state_dict(data: st.DataObject, name: str, target: str, param: int) -> None:
    opt, grads = built(name)
    other, _ = built(name, lr=1e-4)
    other.step(grads)
    sd = other.state_dict()
    st_ = sd["state"][param]
    if target in ("step_count", "skipped_steps"):
        sd[target], exc = data.draw(NOT_A_COUNT)
        names: tuple[str, ...] = (f"'{target}'",)
    elif target == "step":
        if "step" not in st_:
            return
        st_["step"], exc = data.draw(NOT_A_COUNT)
        names = (f"'step' of parameter {param}",)
    elif target == "mu_product":
        if "mu_product" not in st_:
            return
        st_["mu_product"], exc = data.draw(st.one_of(
            NOT_A_NUMBER, PAST_FLOAT64,
            raising(st.sampled_from([math.nan, math.inf, -math.inf]), ValueError)))
        names = (f"'mu_product' of parameter {param}",)
    elif target in ("array", "array-kind"):
        slot = next((k for k, v in st_.items() if isinstance(v, np.ndarray)), None)
        if slot is None:
            return
        shape = st_[slot].shape
        if target == "array":
            st_[slot], exc = data.draw(st.one_of(
                raising(st.sampled_from([np.ones((int(np.prod(shape)) + 1,)), np.ones(shape + (1,))]), ValueError),
                raising(st.sampled_from([np.ones(shape) + 1j, np.array(["x"] * int(np.prod(shape))).reshape(shape),
                                         np.ma.masked_array(np.ones(shape)), None, "x", {}]), TypeError)))
        else:
            st_[slot], exc = np.zeros(shape, data.draw(st.sampled_from(["c8", "c16", "U2", "S1", "O", "M8[s]", "?"]))), \
                TypeError
        names = (f"'{slot}' of parameter {param}",)
    else:
        where = data.draw(st.sampled_from(["root", "groups", "group", "params", "entry"]))
        junk = data.draw(st.one_of(st.none(), st.integers(), st.text(max_size=3), st.tuples(st.integers())))
        if where == "root":
            sd, exc, names = junk, TypeError, ("state_dict",)
        elif where == "groups":
            sd["param_groups"], exc, names = junk, TypeError, ("'param_groups'",)
        elif where == "group":
            sd["param_groups"][1], exc, names = junk, TypeError, ("param group 1",)
        elif where == "params":
            sd["param_groups"][0]["params"], exc, names = junk, TypeError, ("param group 0: 'params'",)
        else:
            sd["state"][param], exc, names = junk, TypeError, (f"state of parameter {param}",)
    assert_contract(lambda: opt.load_state_dict(sd), exc, names, lambda: fingerprint(opt))


# ---------------------------------------------------------------------------------------------
# Clipping, FlatParams, schedulers, runtime settings
# ---------------------------------------------------------------------------------------------


@CONTRACT
@given(data=st.data(), arg=st.sampled_from(["max_norm", "norm_type", "error_if_nonfinite", "clip_value", "grads"]))
def test_bad_clip_argument(data: st.DataObject, arg: str) -> None:
    grads = [np.linspace(-2, 3, 6), np.linspace(1, 2, 3, dtype=np.float32)]
    if arg == "max_norm":
        value, exc = data.draw(st.one_of(NOT_A_NUMBER, PAST_FLOAT64, NEGATIVE))
        call: Callable[[], Any] = lambda: fusedopt.clip_grad_norm_(grads, value)  # noqa: E731
    elif arg == "norm_type":
        value, exc = data.draw(st.one_of(NOT_A_NUMBER, PAST_FLOAT64, NEGATIVE.filter(lambda v: v[0] != -math.inf)))
        call = lambda: fusedopt.clip_grad_norm_(grads, 1.0, norm_type=value)  # noqa: E731
    elif arg == "error_if_nonfinite":
        value, exc = data.draw(NOT_A_FLAG)
        call = lambda: fusedopt.clip_grad_norm_(grads, 1.0, error_if_nonfinite=value)  # noqa: E731
    elif arg == "clip_value":
        value, exc = data.draw(st.one_of(NOT_A_NUMBER, PAST_FLOAT64, NEGATIVE))
        call = lambda: fusedopt.clip_grad_value_(grads, value)  # noqa: E731
    else:
        kind = data.draw(bad_array_kinds(exclude={"other-float", "wrong-shape", "transposed", "fortran"}))  # fine for clipping
        make, exc = BAD_ARRAYS[kind]
        grads.append(make((3, 2), np.float32))
        which = data.draw(st.sampled_from([
            lambda: fusedopt.clip_grad_norm_(grads, 1.0), lambda: fusedopt.clip_grad_value_(grads, 1.0),
            lambda: fusedopt.get_total_norm(grads, 0)]))
        call, arg = which, "grads[2]"
    assert_contract(call, exc, (arg,), lambda: arrays_fingerprint(grads))


@CONTRACT
@given(data=st.data(), arg=st.sampled_from(["shape", "dims", "name", "dtype"]))
def test_bad_flat_params_argument(data: st.DataObject, arg: str) -> None:
    shapes: Any = {"w": (2, 3), "b": 3}
    dtype: Any = np.float32
    if arg == "shape":
        shapes["b"], exc = data.draw(raising(st.one_of(st.floats(), st.none(), st.text(min_size=1, max_size=2),
                                                       st.just({})), TypeError))
        names = ("shapes['b']",)
    elif arg == "dims":
        shapes["b"], exc = data.draw(st.one_of(
            raising(st.tuples(st.integers(1, 3), st.floats() | st.booleans() | st.none()), TypeError),
            raising(st.tuples(st.integers(max_value=-1)), ValueError),
            raising(st.tuples(st.integers(min_value=2**62)), ValueError)))
        names = ("shapes['b']",)
    elif arg == "name":
        shapes[data.draw(st.integers() | st.none() | st.just(b"b"))], exc = (1,), TypeError
        names = ("shapes",)
    else:
        dtype, exc = data.draw(st.one_of(
            raising(st.sampled_from(["abc", "f16x", object(), "int32", np.int64, np.int16, "c8",
                                     np.dtype("U3")]), TypeError)))
        names = ("dtype",)
    assert_contract(lambda: fusedopt.FlatParams(shapes, dtype=dtype), exc, names, lambda: None)


SCHEDULERS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    # name: (class, good arguments); each argument is replaced in turn by a bad value
    "StepLR": (schedules.StepLR, {"step_size": 2, "gamma": 0.5}),
    "ExponentialLR": (schedules.ExponentialLR, {"gamma": 0.9}),
    "LinearLR": (schedules.LinearLR, {"start_factor": 0.5, "end_factor": 1.0, "total_iters": 3}),
    "CosineAnnealingLR": (schedules.CosineAnnealingLR, {"T_max": 5, "eta_min": 0.0}),
    "PolynomialLR": (schedules.PolynomialLR, {"total_iters": 4, "power": 2.0}),
    "OneCycleLR": (schedules.OneCycleLR, {"max_lr": 0.1, "total_steps": 10}),
    "CosineAnnealingWarmRestarts": (schedules.CosineAnnealingWarmRestarts, {"T_0": 3, "T_mult": 2}),
}
SCHEDULER_ARGS = [(s, a) for s, (_, kw) in SCHEDULERS.items() for a in kw]
NEGATIVE_OK = {"eta_min", "max_lr"}  # any finite number, as in torch


@CONTRACT
@given(data=st.data(), case=st.sampled_from(SCHEDULER_ARGS))
def test_bad_scheduler_argument(data: st.DataObject, case: tuple[str, str]) -> None:
    sched, arg = case
    cls, kwargs = SCHEDULERS[sched]
    value, _ = data.draw(st.one_of(NOT_A_NUMBER, PAST_FLOAT64, raising(st.just(math.nan), ValueError))
                         if arg in NEGATIVE_OK else st.one_of(NOT_A_NUMBER, PAST_FLOAT64, NEGATIVE))
    opt, _ = built("SGD")
    assert_contract(lambda: cls(opt, **{**kwargs, arg: value}), Exception, (arg,), lambda: fingerprint(opt))


@CONTRACT
@given(data=st.data(), setting=st.sampled_from(["threads", "target", "flush"]))
def test_bad_runtime_setting(data: st.DataObject, setting: str) -> None:
    exc: type[Exception] = ValueError
    if setting == "flush":
        value, exc = data.draw(NOT_A_FLAG)
        call: Callable[[], Any] = lambda: fusedopt.set_flush_denormal(value)  # noqa: E731
        names: tuple[str, ...] = ("on must be",)
    elif setting == "threads":
        value, exc = data.draw(st.one_of(
            raising(st.integers(max_value=0) | st.integers(min_value=2**31), ValueError),
            raising(st.one_of(st.floats(), st.text(max_size=3), st.none(), st.booleans()), TypeError)))
        call = lambda: fusedopt.set_num_threads(value)  # noqa: E731
        names = ("n must be",)
    else:
        value, exc = data.draw(st.one_of(
            raising(st.text(max_size=8).filter(lambda s: s not in ("baseline", "avx2", "avx512")), ValueError),
            raising(st.none() | st.integers(), TypeError)))
        call = lambda: fusedopt.set_target(value)  # noqa: E731
        names = ("target",)
    assert_contract(call, exc, names,
                    lambda: (fusedopt.get_num_threads(), fusedopt.get_target(), fusedopt.get_flush_denormal()))
