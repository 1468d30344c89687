"""The boundary's contract, one regression test per input the fuzzer of issue 13 found: bad
input raises TypeError or ValueError naming the argument (and the parameter), and changes
nothing; load_state_dict is all or nothing. (Property-based variants of the same kinds of input:
test_bad_inputs_hypothesis.py; robust norms: test_norm_extremes.py.)"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import OPTIMIZERS, Armed, armed, assert_same_bits
from fusedopt import schedules
from fusedopt.schedules import LambdaLR

NAMES = list(OPTIMIZERS)
STEP_NAMES = [n for n in NAMES if OPTIMIZERS[n].has_step]  # SGD and LARS keep no 'step'
LAST = 4  # the last parameter of Armed's optimizer (in its param group 1)


def _loaded(name: str, mutate: Callable[[dict], None]) -> dict:
    """A valid state dict of Armed's layout (other values), mutated."""
    other = Armed(name)
    other.opt.step(other.grads(3))
    sd = other.opt.state_dict()
    mutate(sd)
    return sd


def _set(*path: Any, value: Any) -> Callable[[dict], None]:
    def mutate(sd: dict) -> None:
        d = sd
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return mutate


def _delete(*path: Any) -> Callable[[dict], None]:
    def mutate(sd: dict) -> None:
        d = sd
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return mutate


def _complex_state(sd: dict) -> None:
    st = sd["state"][LAST]
    name = next(k for k, v in st.items() if isinstance(v, np.ndarray))
    st[name] = st[name] + 1j


def _masked_state(sd: dict) -> None:
    st = sd["state"][LAST]
    name = next(k for k, v in st.items() if isinstance(v, np.ndarray))
    st[name] = np.ma.masked_array(st[name], mask=np.zeros(st[name].shape, bool))


# ---------------------------------------------------------------------------------------------
# load_state_dict: every case raises the named class, names what is wrong, and changes nothing
# (Armed.assert_rejected: bitwise copies of every array, a twin, counters, a good step after).
# ---------------------------------------------------------------------------------------------

LOAD_CASES: dict[str, tuple[Callable[[dict], None], type[Exception], str, list[str]]] = {
    # (mutation, exception, message, optimizers it applies to)
    "skipped-negative": (_set("skipped_steps", value=-1), ValueError, r"'skipped_steps' must be a whole number", NAMES),
    "skipped-fraction": (_set("skipped_steps", value=1.5), ValueError, r"'skipped_steps'", NAMES),
    "skipped-string": (_set("skipped_steps", value="3"), TypeError, r"'skipped_steps'", NAMES),
    "skipped-huge": (_set("skipped_steps", value=10**400), ValueError, r"'skipped_steps'", NAMES),
    "step-count-negative": (_set("step_count", value=-3), ValueError, r"'step_count' must be a whole number", NAMES),
    "step-count-bool": (_set("step_count", value=True), TypeError, r"'step_count'", NAMES),
    "step-count-nan": (_set("step_count", value=math.nan), ValueError, r"'step_count'", NAMES),
    "group-none": (_set("param_groups", 1, value=None), TypeError, r"state_dict: param group 1: expected a dict", NAMES),
    "group-params-none": (_set("param_groups", 1, "params", value=None), TypeError, r"param group 1: 'params'", NAMES),
    "group-key-unhashable": (_set("param_groups", 1, "params", 0, value=[2]), TypeError, r"param group 1: 'params' key",
                             NAMES),
    "group-key-twice": (_set("param_groups", 1, "params", 0, value=0), ValueError, r"key 0 is listed twice", NAMES),
    "state-none": (_set("state", LAST, value=None), TypeError, rf"state of parameter {LAST}: expected a dict", NAMES),
    "no-lr": (_delete("param_groups", 1, "lr"), ValueError, r"^lr \(param group 1\): missing", NAMES),
    "lr-huge": (_set("param_groups", 1, "lr", value=10**400), ValueError, r"^lr \(param group 1\): .* too large",
                NAMES),
    "lr-string": (_set("param_groups", 1, "lr", value="0.1"), TypeError, r"^lr \(param group 1\): expected a number",
                  NAMES),
    "no-amsgrad": (_delete("param_groups", 0, "amsgrad"), ValueError, r"^amsgrad \(param group 0\): missing",
                   ["Adam", "AdamW"]),
    "amsgrad-string": (_set("param_groups", 0, "amsgrad", value="no"), TypeError,
                       r"^amsgrad \(param group 0\): expected a bool", ["Adam", "AdamW"]),
    "maximize-int": (_set("param_groups", 0, "maximize", value=1), TypeError,
                     r"^maximize \(param group 0\): expected a bool", NAMES),
    "step-huge": (_set("state", LAST, "step", value=10**400), ValueError,
                  rf"'step' of parameter {LAST} must be a whole number", STEP_NAMES),
    "step-bool": (_set("state", LAST, "step", value=True), TypeError, rf"'step' of parameter {LAST}", STEP_NAMES),
    "step-string": (_set("state", LAST, "step", value="2"), TypeError, rf"'step' of parameter {LAST}", STEP_NAMES),
    "step-none": (_set("state", LAST, "step", value=None), TypeError, rf"'step' of parameter {LAST}", STEP_NAMES),
    "complex-state": (_complex_state, TypeError, rf"of parameter {LAST} has dtype complex", NAMES),
    "masked-state": (_masked_state, TypeError, rf"of parameter {LAST} is a numpy.ma.MaskedArray", NAMES),
    "string-state": (_set("state", LAST, "exp_avg", value=np.array(["a"] * 9)), TypeError,
                     rf"'exp_avg' of parameter {LAST} has dtype <U1", ["Adam", "AdamW", "NAdam", "RAdam", "Adamax",
                                                                         "Lion"]),
    "no-mu-product": (_delete("state", LAST, "mu_product"), ValueError, rf"'mu_product' of parameter {LAST} is missing",
                      ["NAdam"]),
    "mu-product-none": (_set("state", LAST, "mu_product", value=None), TypeError,
                        rf"'mu_product' of parameter {LAST}: expected a number", ["NAdam"]),
    "mu-product-nan": (_set("state", LAST, "mu_product", value=math.nan), ValueError,
                       rf"'mu_product' of parameter {LAST} must be finite", ["NAdam"]),
    "mu-product-inf": (_set("state", LAST, "mu_product", value=math.inf), ValueError,
                       rf"'mu_product' of parameter {LAST} must be finite", ["NAdam"]),
    "mu-product-huge": (_set("state", LAST, "mu_product", value=10**400), ValueError,
                        rf"'mu_product' of parameter {LAST}: .* too large", ["NAdam"]),
}
_LOAD = [(n, c) for c, (*_, names) in LOAD_CASES.items() for n in names]


@pytest.mark.parametrize("name, case", _LOAD, ids=[f"{n}-{c}" for n, c in _LOAD])
def test_load_state_dict_rejects_and_changes_nothing(name: str, case: str, path: str) -> None:
    mutate, exc, match, _ = LOAD_CASES[case]
    a = armed(name, path)
    a.assert_rejected(_loaded(name, mutate), exc, match, call=a.opt.load_state_dict)


@pytest.mark.parametrize("bad, exc, match", [
    (None, TypeError, r"^state_dict: expected a dict, got NoneType"),
    ([1, 2], TypeError, r"^state_dict: expected a dict, got list"),
    ({"state": {}, "param_groups": None}, TypeError, r"^state_dict: 'param_groups' must be a list, got NoneType"),
    ({"state": None, "param_groups": []}, TypeError, r"^state_dict: 'state' must be a dict, got NoneType"),
    ({"state": {}}, ValueError, r"^state_dict: expected 'state' and 'param_groups' entries"),
], ids=["none", "list", "groups-none", "state-none", "groups-missing"])
def test_load_state_dict_of_the_wrong_shape(bad: Any, exc: type[Exception], match: str) -> None:
    a = Armed("Adam")
    a.assert_rejected(bad, exc, match, call=a.opt.load_state_dict)


def test_bad_skipped_steps_changes_no_counter() -> None:
    """The issue's first example: step_count and every 'step' were replaced before the raise."""
    a = Armed("Adam")
    before = (a.opt.step_count, [st["step"] for st in a.opt.state_dict()["state"].values()])
    sd = _loaded("Adam", _set("skipped_steps", value=-1))
    assert sd["step_count"] != before[0]
    with pytest.raises(ValueError, match=r"skipped_steps"):
        a.opt.load_state_dict(sd)
    assert (a.opt.step_count, [st["step"] for st in a.opt.state_dict()["state"].values()]) == before


# ---------------------------------------------------------------------------------------------
# Steps after edits between steps (the state handed out, or the param groups edited)
# ---------------------------------------------------------------------------------------------


def _edit_then_step(a: Armed, edit: Callable[[], None], undo: Callable[[], None]) -> Callable[[Any], Any]:
    def call(grads: Any) -> Any:
        edit()
        try:
            return a.opt.step(grads)
        finally:
            undo()
    return call


@pytest.mark.parametrize("value, exc, match", [
    (None, TypeError, r"'mu_product' of parameter 4: expected a number"),
    (math.nan, ValueError, r"'mu_product' of parameter 4 must be finite"),
    ("0.5", TypeError, r"'mu_product' of parameter 4: expected a number"),
])
def test_nadam_mu_product_edited_in_state_is_refused_at_the_step(value: Any, exc: type[Exception], match: str) -> None:
    a = armed("NAdam", "general")
    st = a.opt.state[LAST]
    good = st["mu_product"]
    a.assert_rejected(a.grads(2), exc, match,
                      call=_edit_then_step(a, lambda: st.__setitem__("mu_product", value),
                                           lambda: st.__setitem__("mu_product", good)))


def test_nadam_mu_product_removed_from_state_is_refused_at_the_step() -> None:
    a = armed("NAdam", "general")
    st = a.opt.state[LAST]
    good = st["mu_product"]
    a.assert_rejected(a.grads(2), ValueError, r"'mu_product' of parameter 4 is missing",
                      call=_edit_then_step(a, lambda: st.pop("mu_product"),
                                           lambda: st.__setitem__("mu_product", good)))


@pytest.mark.parametrize("name, hp, value, exc, match", [
    ("Adam", "amsgrad", "no", TypeError, r"^amsgrad \(param group 1\): expected a bool, got str"),
    ("SGD", "nesterov", 1, TypeError, r"^nesterov \(param group 1\): expected a bool, got int"),
    ("Adam", "lr", 10**400, ValueError, r"^lr \(param group 1\): 1000.* is too large for a float64"),
    ("Adam", "eps", 1j, TypeError, r"^eps \(param group 1\): expected a number, got complex"),
    ("NAdam", "betas", (0.99999999, 0.999), ValueError, r"^betas\[0\] \(param group 1\): rounds to 1 in float32"),
    ("Adafactor", "beta2_decay", 0.5, ValueError, r"^beta2_decay \(param group 1\): must be <= 0"),
    ("Adafactor", "d", 0.5, ValueError, r"^d \(param group 1\): must be >= 1"),
    ("Adafactor", "eps", (-1e-3, 1e-3), ValueError, r"^eps\[0\] \(param group 1\): must be >= 0, got -0.001"),
    ("Adafactor", "eps", (None, None), ValueError, r"^eps\[1\] \(param group 1\): must be a number >= 0"),
    ("Adafactor", "eps", 1e-3, ValueError, r"^eps \(param group 1\): expected a pair \(eps1, eps2\), got 0.001"),
    ("Adafactor", "weight_decay", -0.1, ValueError, r"^weight_decay \(param group 1\): must be >= 0"),
])
def test_bad_hyperparameter_set_between_steps(name: str, hp: str, value: Any, exc: type[Exception], match: str,
                                              path: str) -> None:
    a = armed(name, path)
    g = a.opt.param_groups[1]
    good = g[hp]
    a.assert_rejected(a.grads(2), exc, match,
                      call=_edit_then_step(a, lambda: g.__setitem__(hp, value), lambda: g.__setitem__(hp, good)))


# ---------------------------------------------------------------------------------------------
# Constructors, add_param_group, step: types, flags, overflow, subclasses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs, exc, match", [
    ("Adam", {"lr": 10**400}, ValueError, r"^lr: 1000.* is too large for a float64"),
    ("Adam", {"amsgrad": "no"}, TypeError, r"^amsgrad: expected a bool, got str"),
    ("Adam", {"amsgrad": None}, TypeError, r"^amsgrad: expected a bool, got NoneType"),
    ("Adam", {"amsgrad": np.array([True])}, TypeError, r"^amsgrad: expected a bool, got numpy.ndarray"),
    ("SGD", {"nesterov": 1, "momentum": 0.9}, TypeError, r"^nesterov: expected a bool, got int"),
    ("Adam", {"betas": (0.9, 10**400)}, ValueError, r"^betas\[1\]: .* too large"),
    ("Adam", {"max_grad_norm": 10**400}, ValueError, r"^max_grad_norm: .* too large"),
    ("Adam", {"max_grad_norm": 1j}, TypeError, r"^max_grad_norm: expected a number, got complex"),
    ("Adam", {"clip_value": "1"}, TypeError, r"^clip_value: expected a number, got str"),
    ("Adam", {"nonfinite": ["skip"]}, TypeError, r"^nonfinite must be one of"),
    ("Adam", {"backend": None}, TypeError, r"^backend must be one of"),
    ("NAdam", {"betas": (0.99999999, 0.999), "momentum_decay": 1e6}, ValueError, r"^betas\[0\]: rounds to 1 in float32"),
    ("NAdam", {"betas": (0.99999999, 0.999), "momentum_decay": 1e6, "backend": "numpy"}, ValueError,
     r"^betas\[0\]: rounds to 1 in float32"),
    ("Adafactor", {"beta2_decay": 1e-3}, ValueError, r"^beta2_decay: must be <= 0"),
    ("Adafactor", {"beta2_decay": float("nan")}, ValueError, r"^beta2_decay: must be <= 0"),
    ("Adafactor", {"d": 0.99}, ValueError, r"^d: must be >= 1"),
    ("Adafactor", {"eps": (-1e-30, 1e-3)}, ValueError, r"^eps\[0\]: must be >= 0"),
    ("Adafactor", {"eps": (None, -1.0)}, ValueError, r"^eps\[1\]: must be >= 0"),
    ("Adafactor", {"eps": (None, "1e-3")}, TypeError, r"^eps\[1\]: expected a number, got str"),
    ("Adafactor", {"eps": (None,)}, ValueError, r"^eps: expected a pair \(eps1, eps2\)"),
    ("Adafactor", {"lr": -1e-3}, ValueError, r"^lr: must be >= 0"),
    ("Adafactor", {"maximize": 1}, TypeError, r"^maximize: expected a bool, got int"),
    ("Adafactor", {"foreach": True}, TypeError, r"Adafactor\(\) got an unexpected keyword argument 'foreach'"),
])
def test_bad_constructor_argument(name: str, kwargs: dict, exc: type[Exception], match: str) -> None:
    p = np.ones(3)
    with pytest.raises(exc, match=match):
        OPTIMIZERS[name]([p], **kwargs)
    assert_same_bits(p, np.ones(3), "param")


@pytest.mark.parametrize("flag", [True, False, np.bool_(True), np.bool_(False)], ids=str)
def test_flags_accept_python_and_numpy_bools(flag: Any) -> None:
    p = np.ones(3)
    opt = fusedopt.Adam([p], amsgrad=flag, maximize=flag)
    opt.step([np.full(3, 0.5)])
    assert (p < 1).all() != bool(flag)


def test_nadam_beta1_below_one_in_float32_is_fine_without_momentum_decay() -> None:
    p = np.ones(3)
    fusedopt.NAdam([p], betas=(0.99999999, 0.999), momentum_decay=0.0).step([np.ones(3)])
    assert np.isfinite(p).all()


def test_params_mixing_named_and_unnamed_entries_is_value_error_as_in_torch() -> None:
    with pytest.raises(ValueError, match=r"^params: all params must be given with names, or none"):
        fusedopt.SGD([("a", np.ones(2)), np.ones(2)], lr=0.1)
    opt = fusedopt.SGD([("a", np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match=r"names, or none"):
        opt.add_param_group({"params": [np.ones(2), ("b", np.ones(2))]})
    assert len(opt.param_groups) == 1


@pytest.mark.torch
def test_params_mixing_named_and_unnamed_entries_torch_raises_value_error_too() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError):
        torch.optim.SGD([("a", torch.nn.Parameter(torch.ones(2))), torch.nn.Parameter(torch.ones(2))], lr=0.1)


def _masked(shape: Any) -> np.ma.MaskedArray:
    return np.ma.masked_array(np.ones(shape), mask=np.eye(1, int(np.prod(shape)), dtype=bool).reshape(shape))


class _Tagged(np.ndarray):
    """A user subclass: refused like any other (only ndarray and numpy.memmap are taken)."""


@pytest.mark.parametrize("make, kind", [
    (_masked, "MaskedArray"),
    (lambda shape: np.ones(shape).view(_Tagged), "_Tagged"),
    (lambda shape: np.ones(shape).view(np.recarray), "recarray"),
], ids=["masked", "user-subclass", "recarray"])
def test_array_subclasses_refused_as_params(make: Callable[[Any], np.ndarray], kind: str) -> None:
    bad = make((1, 4))
    before = np.array(bad).copy()
    with pytest.raises(TypeError, match=rf"^params\[1\]: {kind} is not accepted"):
        fusedopt.SGD([np.ones(2), bad], lr=0.1)
    opt = fusedopt.SGD([np.ones(2)], lr=0.1)
    with pytest.raises(TypeError, match=rf"^params\[0\]: {kind} is not accepted"):
        opt.add_param_group({"params": [bad]})
    assert len(opt.param_groups) == 1
    assert_same_bits(np.array(bad), before, "refused param")


@pytest.mark.parametrize("name", NAMES)
def test_masked_grad_refused_and_nothing_changes(name: str, path: str) -> None:
    a = armed(name, path)
    grads = a.grads(2)
    grads[LAST] = np.ma.masked_array(grads[LAST], mask=np.ones(grads[LAST].shape, bool))
    a.assert_rejected(grads, TypeError, rf"^grads for parameter {LAST}: MaskedArray is not accepted")


def test_memmap_params_and_grads_are_stepped_in_place(tmp_path: Any) -> None:
    p = np.memmap(tmp_path / "p.bin", dtype=np.float32, mode="w+", shape=(8,))
    p[:] = 1.0
    g = np.memmap(tmp_path / "g.bin", dtype=np.float32, mode="w+", shape=(8,))
    g[:] = 0.5
    plain = np.ones(8, np.float32)
    fusedopt.Adam([p], lr=0.1).step([g])
    fusedopt.Adam([plain], lr=0.1).step([np.full(8, 0.5, np.float32)])
    assert_same_bits(np.asarray(p), plain, "memmap param")


@pytest.mark.parametrize("value, exc, match", [
    (-1, ValueError, r"^step_count: must be a whole number >= 0, got -1"),
    (1.5, ValueError, r"^step_count: must be a whole number"),
    ("3", TypeError, r"^step_count: must be a whole number"),
    (10**400, ValueError, r"^step_count: must be a whole number"),
    (None, TypeError, r"^step_count: must be a whole number"),
    (np.bool_(True), TypeError, r"^step_count: must be a whole number"),
])
def test_bad_counter_assignment(value: Any, exc: type[Exception], match: str) -> None:
    opt = fusedopt.Adam([np.ones(2)])
    opt.step([np.ones(2)])
    with pytest.raises(exc, match=match):
        opt.step_count = value
    with pytest.raises(exc, match=match.replace("step_count", "skipped_steps")):
        opt.skipped_steps = value
    assert (opt.step_count, opt.skipped_steps) == (1, 0)


# ---------------------------------------------------------------------------------------------
# A negative lr reached mid-run: torch checks lr at construction only, so it steps and loads.
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("name", NAMES)
def test_negative_lr_from_a_scheduler_steps_and_resumes(name: str, backend: str) -> None:
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(5) for _ in range(6)]
    p = np.linspace(0.5, 1.5, 5)
    opt = OPTIMIZERS[name]([p], lr=0.01, backend=backend)
    sched = LambdaLR(opt, lambda epoch: 1.0 - epoch)  # lr 0.01, 0, -0.01, -0.02, ...
    for g in grads[:3]:
        opt.step([g])
        sched.step()
    assert opt.param_groups[0]["lr"] < 0
    sd = opt.state_dict()
    q = p.copy()
    resumed = OPTIMIZERS[name]([q], lr=0.01, backend=backend)
    resumed.load_state_dict(sd)  # a checkpoint with lr < 0 loads, as in torch
    for g in grads[3:]:
        opt.step([g])
        resumed.step([g])
    assert_same_bits(q, p, "resumed param")
    with pytest.raises(ValueError, match=r"^lr: must be >= 0"):  # the constructor still checks it
        OPTIMIZERS[name]([np.ones(2)], lr=-0.01)


@pytest.mark.torch
def test_negative_lr_mid_run_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(6) for _ in range(5)]
    p = np.linspace(-1, 1, 6)
    tp = torch.nn.Parameter(torch.tensor(p.copy()))
    opt = fusedopt.Adam([p], lr=0.1)
    topt = torch.optim.Adam([tp], lr=0.1)
    sched = LambdaLR(opt, lambda e: 1.0 - e)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda e: 1.0 - e)
    for g in grads:
        opt.step([g])
        tp.grad = torch.tensor(g)
        topt.step()
        sched.step()
        tsched.step()
    assert topt.param_groups[0]["lr"] < 0
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Clipping and FlatParams: the argument named, the gradients untouched
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, exc, match", [
    (lambda g: fusedopt.clip_grad_norm_(g, 10**400), ValueError, r"^max_norm: .* too large for a float64"),
    (lambda g: fusedopt.clip_grad_norm_(g, 1j), TypeError, r"^max_norm: expected a number, got complex"),
    (lambda g: fusedopt.clip_grad_norm_(g, 1.0, norm_type=10**400), ValueError, r"^norm_type: .* too large"),
    (lambda g: fusedopt.clip_grad_norm_(g, 1.0, error_if_nonfinite="yes"), TypeError, r"^error_if_nonfinite"),
    (lambda g: fusedopt.get_total_norm(g, "two"), TypeError, r"^norm_type: expected a number, got str"),
    (lambda g: fusedopt.get_total_norm(g, -1.0), ValueError, r"^norm_type: must be >= 0, inf or -inf"),
    (lambda g: fusedopt.get_total_norm(g, 2, error_if_nonfinite=np.array([1, 0])), TypeError,
     r"^error_if_nonfinite: expected a bool, got ndarray"),
    (lambda g: fusedopt.clip_grad_value_(g, 10**400), ValueError, r"^clip_value: .* too large"),
    (lambda g: fusedopt.clip_grad_value_(g, None), TypeError, r"^clip_value: expected a number"),
    (lambda g: fusedopt.clip_grads_with_norm_(g, 1.0, "3"), TypeError, r"^total_norm: expected a number"),
    (lambda g: fusedopt.clip_grads_with_norm_(g, 1.0, -1e-6), ValueError, r"^total_norm: must be >= 0"),
    (lambda g: fusedopt.clip_grad_norm_([*g, _masked((3,))], 1.0), TypeError, r"^grads\[2\]: MaskedArray"),
    (lambda g: fusedopt.get_total_norm([*g, _masked((3,))], 0), TypeError, r"^grads\[2\]: MaskedArray"),
    (lambda g: fusedopt.get_total_norm([*g, [1.0, 2.0]], 0), TypeError, r"^grads\[2\]: expected a numpy.ndarray"),
], ids=["max-norm-huge", "max-norm-complex", "norm-type-huge", "error-flag-str", "norm-type-str", "norm-type-neg",
        "error-flag-array", "clip-value-huge", "clip-value-none", "total-norm-str", "total-norm-neg",
        "masked-grad", "masked-grad-p0", "list-grad-p0"])
def test_clip_bad_argument(call: Callable[[list], Any], exc: type[Exception], match: str) -> None:
    g = [np.linspace(-3, 3, 7), np.linspace(1, 2, 4, dtype=np.float32)]
    before = [x.copy() for x in g]
    with pytest.raises(exc, match=match):
        call(g)
    for x, y in zip(g, before):
        assert_same_bits(x, y, "grad")


@pytest.mark.parametrize("shapes, kwargs, exc, match", [
    ({"a": 1.5}, {}, TypeError, r"^shapes\['a'\]: expected an int or a sequence of ints, got float"),
    ({"a": (2, 2.5)}, {}, TypeError, r"^shapes\['a'\]: dimensions must be ints, got 2.5"),
    ({"a": (True,)}, {}, TypeError, r"^shapes\['a'\]: dimensions must be ints"),
    ({"a": "ab"}, {}, TypeError, r"^shapes\['a'\]: expected an int or a sequence"),
    ({"a": (-1,)}, {}, ValueError, r"^shapes\['a'\]: negative dimension"),
    ({"a": (10**400,)}, {}, ValueError, r"^shapes\['a'\]: .* too many elements"),
    ({1: (2,)}, {}, TypeError, r"^shapes: names must be str"),
    ([("a", 2)], {}, TypeError, r"^shapes: expected a dict"),
    ({}, {}, ValueError, r"^shapes: expected a non-empty dict"),
    ({"a": (2,)}, {"dtype": "abc"}, TypeError, r"^dtype: not a NumPy dtype: 'abc'"),
    ({"a": (2,)}, {"dtype": np.int32}, TypeError, r"^dtype: must be float32, float64, float16 or bfloat16, got int32"),
])
def test_flat_params_bad_argument(shapes: Any, kwargs: dict, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        fusedopt.FlatParams(shapes, **kwargs)


@pytest.mark.parametrize("make, match", [
    (lambda o: schedules.CosineAnnealingWarmRestarts(o, T_0=2**1100), r"^T_0 must be an integer below 2\*\*53"),
    (lambda o: schedules.OneCycleLR(o, max_lr=0.1, total_steps=2**1024), r"^total_steps must be an integer below"),
    (lambda o: schedules.OneCycleLR(o, max_lr=10**400, total_steps=10), r"^max_lr must be a finite number"),
    (lambda o: schedules.OneCycleLR(o, max_lr=None, total_steps=10), r"^max_lr must be a finite number, got None"),
    (lambda o: schedules.CyclicLR(o, base_lr=[0.1, "x"], max_lr=1.0), r"^base_lr\[1\] must be a finite number"),
    (lambda o: schedules.StepLR(o, step_size=2, gamma=10**400), r"^gamma must be >= 0"),
    (lambda o: schedules.cosine_decay(10**400, 10), r"^init_value must be a finite number"),
], ids=["T_0-huge", "total-steps-huge", "max-lr-huge", "max-lr-none", "base-lr-str", "gamma-huge", "fn-huge"])
def test_scheduler_bad_argument_is_value_error_naming_it(make: Callable[[Any], Any], match: str) -> None:
    """These raised OverflowError, or a TypeError about None / float arithmetic."""
    opt = fusedopt.SGD([{"params": [np.ones(2)]}, {"params": [np.ones(2)]}], lr=0.1, momentum=0.9)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=match):
        make(opt)
    assert [dict(g) for g in opt.param_groups] == before


# ---------------------------------------------------------------------------------------------
# The runtime settings (runtime.py)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fusedopt.set_num_threads("x"), TypeError, r"^n must be an int >= 1, got str"),
    (lambda: fusedopt.set_num_threads(1.5), TypeError, r"^n must be an int >= 1, got float"),
    (lambda: fusedopt.set_num_threads(0), ValueError, r"^n must be an int >= 1"),
    (lambda: fusedopt.set_num_threads(np.int64(-2)), ValueError, r"^n must be an int >= 1 \(and below 2\*\*31\), got -2"),
    (lambda: fusedopt.set_num_threads(True), TypeError, r"^n must be an int >= 1, got bool"),
    (lambda: fusedopt.set_num_threads(10**400), ValueError, r"^n must be an int >= 1 \(and below 2\*\*31\)"),
    (lambda: fusedopt.set_target("nope"), ValueError, r"^target must be one of"),
    (lambda: fusedopt.set_target(None), TypeError, r"^target must be one of .*; got NoneType"),
    (lambda: fusedopt.set_flush_denormal("no"), TypeError, r"^on must be a bool, got str"),
    (lambda: fusedopt.set_flush_denormal(0), TypeError, r"^on must be a bool, got int"),
], ids=["threads-str", "threads-float", "threads-zero", "threads-numpy-negative", "threads-bool", "threads-huge", "target-unknown", "target-none", "flush-str", "flush-int"])
def test_runtime_bad_setting_changes_nothing(call: Callable[[], Any], exc: type[Exception], match: str) -> None:
    before = (fusedopt.get_num_threads(), fusedopt.get_target(), fusedopt.get_flush_denormal())
    with pytest.raises(exc, match=match):
        call()
    assert (fusedopt.get_num_threads(), fusedopt.get_target(), fusedopt.get_flush_denormal()) == before
