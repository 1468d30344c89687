"""Every validation rule raises the right exception, with a message naming the argument, and
BEFORE anything is written.

"Nothing written" is checked two ways for every rejected step:

* copies of every parameter and every state array taken before the call equal (bitwise) the
  live arrays after it;
* a twin optimizer, built and stepped identically but never given the bad call, equals the
  rejected one afterwards in every parameter, every state entry (arrays, 'step',
  'mu_product') and the counters; and both still step identically afterwards.

Rejected steps are tried on both of the optimizer's paths: "steady" (state not read since the
last successful step: the per-group lists cached by the previous step are reused) and
"general" (state just read, so the step plans from scratch).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    ARMED_SHAPES as SHAPES,
)
from conftest import (
    ARMED_SPLIT as N0,
)
from conftest import (
    OPTIMIZERS,
    RICH_CONFIGS,
    Armed,
    armed,
    assert_same_bits,
    copies,
    make_grad_stream,
    make_params,
    state_arrays,
)

NAMES = list(OPTIMIZERS)


# ---------------------------------------------------------------------------------------------
# Bad gradients (always in the LAST param group, at its last parameter: the first group's
# parameters, updated by the same native call, must stay untouched too)
# ---------------------------------------------------------------------------------------------


def _byteswapped(g: np.ndarray) -> np.ndarray:
    return g.astype(g.dtype.newbyteorder(">" if g.dtype.byteorder in "=<" else "<"))


def _last_index() -> int:
    return len(SHAPES) - 1


GRAD_CASES: dict[str, tuple[Callable[[Armed, list], Any], type[BaseException], str]] = {}


def grad_case(name: str, exc: type[BaseException], match: str):
    def register(fn: Callable[[Armed, list], Any]):
        GRAD_CASES[name] = (fn, exc, match)
        return fn
    return register


def _replace(grads: list, i: int, g: Any) -> list:
    out = list(grads)
    out[i] = g
    return out


@grad_case("int64", TypeError, r"grads for parameter 4: dtype int64 is not supported")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), np.ones(SHAPES[-1], dtype=np.int64))


@grad_case("float16", TypeError, r"grads for parameter 4: dtype float16 does not match the parameter's float")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), np.ones(SHAPES[-1], dtype=np.float16))


@grad_case("dtype-mismatch", TypeError, r"grads for parameter 4: dtype float64 does not match the parameter's float32")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), grads[-1].astype(np.float64))


# (Non-contiguous and Fortran-order gradients are read through a copy: tests/test_layouts.py.)


@grad_case("byte-order", ValueError, r"grads for parameter 4: byte order is not native")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), _byteswapped(grads[-1]))


@grad_case("shape", ValueError, r"grads for parameter 4: shape \(3, 3\) does not match the parameter's \(9,\)")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), grads[-1].reshape(3, 3))


def _either(x: str, y: str) -> str:
    return rf"({x} and {y}|{y} and {x}) share memory; every updated array must have its own buffer"


@grad_case("aliases-its-param", ValueError, _either("parameter 4", "grads for parameter 4"))
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), a.opt.params[-1])


@grad_case("view-of-another-param", ValueError, _either("parameter 0", "grads for parameter 2"))
def _(a: Armed, grads: list) -> Any:
    p0 = a.opt.params[0]  # 7 elements; param 2 has 5
    return _replace(grads, N0, p0[1:6])


@grad_case("view-of-a-state-array", ValueError, r"for parameter 4 and .*for parameter 4 share memory")
def _(a: Armed, grads: list) -> Any:
    st = [arr for label, arr in state_arrays(a.opt) if arr.shape == SHAPES[-1]]
    if not st:
        pytest.skip("no state array")
    return _replace(grads, _last_index(), st[0])


@grad_case("not-an-array", TypeError, r"grads for parameter 4: expected a numpy.ndarray")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), grads[-1].tolist())


@grad_case("numpy-scalar-for-a-1d-param", TypeError, r"grads for parameter 4: expected a numpy.ndarray")
def _(a: Armed, grads: list) -> Any:
    return _replace(grads, _last_index(), grads[-1][0])  # (only a 0-d parameter takes one)


@grad_case("too-few", ValueError, r"grads: expected 5 gradients \(one per parameter\), got 4")
def _(a: Armed, grads: list) -> Any:
    return grads[:-1]


@grad_case("too-many", ValueError, r"grads: expected 5 gradients \(one per parameter\), got 6")
def _(a: Armed, grads: list) -> Any:
    return grads + [grads[-1].copy()]


@grad_case("dict-for-unnamed", TypeError, r"grads: a dict of grads needs parameters given by name")
def _(a: Armed, grads: list) -> Any:
    return {str(i): g for i, g in enumerate(grads)}


@pytest.mark.parametrize("case", list(GRAD_CASES))
@pytest.mark.parametrize("name", NAMES)
def test_bad_grad_rejected_before_any_write(name: str, case: str, path: str) -> None:
    make, exc, match = GRAD_CASES[case]
    a = armed(name, path)
    bad = make(a, a.grads(2))
    if case == "view-of-a-state-array":
        # reading the state for the view sent both optimizers to the general path
        a.general()
    a.assert_rejected(bad, exc, match)


@pytest.mark.parametrize("name", NAMES)
def test_bad_grad_in_last_of_three_groups_leaves_first_group_untouched(name: str) -> None:
    """Three groups: the last group's bad gradient is found before the kernels run, so the
    first group's parameters (and state) are bitwise unchanged."""
    params = make_params([(8,), (3,), (4,), (5,)], np.float64, 40)
    grads = make_grad_stream([(8,), (3,), (4,), (5,)], np.float64, 2, 41)[0:2]
    groups = [{"params": params[:2]}, {"params": params[2:3]}, {"params": params[3:]}]
    opt = OPTIMIZERS[name](groups, **RICH_CONFIGS[name])
    opt.step(grads[0])
    first = [p.copy() for p in params[:2]]
    first_state = {k: {n: v.copy() for n, v in opt.state[k].items() if isinstance(v, np.ndarray)} for k in (0, 1)}
    bad = list(grads[1])
    bad[3] = bad[3][:4]
    with pytest.raises(ValueError, match=r"grads for parameter 3: shape \(4,\) does not match the parameter's \(5,\)"):
        opt.step(bad)
    for p, p0 in zip(params[:2], first):
        assert_same_bits(p, p0, "first group's param")
    for k, st in first_state.items():
        for n, v in st.items():
            assert_same_bits(opt.state[k][n], v, f"first group's state[{k}][{n}]")


@pytest.mark.parametrize("name", NAMES)
def test_unknown_name_in_grad_dict(name: str, path: str) -> None:
    a = armed(name, path, named=True)
    bad = dict(a.grads(2))
    bad["nope"] = bad["w0"].copy()
    a.assert_rejected(bad, ValueError, r"grads: no parameter named 'nope'")


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_named_bad_grad_message_names_the_parameter(name: str) -> None:
    a = Armed(name, named=True)
    bad = dict(a.grads(2))
    bad["w4"] = bad["w4"].astype(np.float64)
    a.assert_rejected(bad, TypeError, r"grads for parameter 'w4': dtype float64 does not match")


def test_overlapping_params_rejected_at_construction_and_at_step() -> None:
    buf = np.linspace(1, 2, 15)
    p1, p2 = buf[:10], buf[5:]  # both C-contiguous views, overlapping in buf[5:10]
    with pytest.raises(ValueError, match=r"^params\[1\]: shares memory with params\[0\]; every updated array"):
        fusedopt.Adam([p1, p2], lr=0.1)
    with pytest.raises(ValueError, match=r"^params\[0\]: shares memory with a parameter of another param group"):
        fusedopt.Adam([{"params": [p1]}, {"params": [buf[9:12]]}], lr=0.1)
    for make in (lambda: fusedopt.LBFGS([p1, p2]), lambda: fusedopt.Muon([buf[:9].reshape(3, 3), buf[6:].reshape(3, 3)])):
        with pytest.raises(ValueError, match=r"^params\[1\]: shares memory with params\[0\]"):
            make()
    # put into a group's list after construction: the step refuses it, nothing written
    opt = fusedopt.Adam([p1, np.ones(10)], lr=0.1)
    opt.param_groups[0]["params"][1] = p2
    before = buf.copy()
    with pytest.raises(ValueError, match=r"parameter [01] and parameter [01] share memory"):
        opt.step([np.ones(10), np.ones(10)])
    assert_same_bits(buf, before, "buffer")
    assert opt.state == {} and opt.step_count == 0
    # disjoint views of one buffer are fine
    q1, q2 = buf[:7], buf[7:]
    fusedopt.Adam([q1, q2], lr=0.1).step([np.ones(7), np.ones(8)])
    assert not np.array_equal(buf, before)


def test_steady_gradient_sharing_any_written_byte_is_refused() -> None:
    """In a steady step, a gradient at a new address is searched among the arrays the step
    writes (parameters, with gaps between them, and the state pooled per slot): every window of
    a buffer that holds them is refused exactly when it shares a byte with one of them, and
    accepted in the gaps. Covers the first and last spans and both edges of every span."""
    buf = np.zeros(6 * 11, np.float32)
    params = [buf[11 * k + 1: 11 * k + 9] for k in range(6)]  # 8 each, 3 elements apart
    opt = fusedopt.Adam(params, lr=1e-3, amsgrad=True)
    good = [np.full(8, 0.5, np.float32) for _ in params]
    opt.step(good)
    opt.step(good)
    written = params + [v for st in opt.state.values() for v in st.values() if isinstance(v, np.ndarray)]
    buffers = [buf] + list({id(v.base): v.base for v in written[6:]}.values())
    assert len(buffers) == 4, "the state pooled in one buffer per slot"
    tried = refused = 0
    for b in buffers:
        raw = b.view(np.uint8).reshape(-1)
        for start in range(0, raw.size - 32 + 1, 4):
            window = raw[start: start + 32].view(np.float32)
            shares = any(np.shares_memory(window, w) for w in written)
            grads = list(good)
            grads[3] = window
            tried += 1
            if shares:
                refused += 1
                with pytest.raises(ValueError, match="share memory"):
                    opt.step(grads)
            else:
                opt.step(grads)
    assert 0 < refused < tried


@pytest.mark.parametrize("name", NAMES)
def test_first_step_rejected_creates_no_state(name: str) -> None:
    """A bad grad on the very first step (state not created yet) leaves no state behind."""
    params = make_params(SHAPES, np.float64, 5)
    opt = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name])
    before_state = {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in st.items()}
                    for k, st in opt.state.items()}  # Adagrad's state exists from construction
    grads = make_grad_stream(SHAPES, np.float64, 1, 6)[0]
    grads[-1] = grads[-1].astype(np.float32)
    with pytest.raises(TypeError, match="does not match the parameter's float64"):
        opt.step(grads)
    for p, p0 in zip(opt.params, params):
        assert_same_bits(p, p0, "param")
    assert set(opt.state) == set(before_state)
    for k, st in opt.state.items():
        assert set(st) == set(before_state[k])
        for n, v in st.items():
            if isinstance(v, np.ndarray):
                assert_same_bits(v, before_state[k][n], f"state[{k}][{n}]")
            else:
                assert v == before_state[k][n]
    assert opt.step_count == 0


# ---------------------------------------------------------------------------------------------
# Bad parameters (constructor, add_param_group)
# ---------------------------------------------------------------------------------------------


def _swapped(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder("S"))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


BAD_PARAMS = {
    "int64": (lambda: np.ones(4, dtype=np.int64), TypeError, r"params\[1\]: dtype int64 is not supported"),
    "int16": (lambda: np.ones(4, dtype=np.int16), TypeError, r"params\[1\]: dtype int16 is not supported"),
    "non-contiguous": (lambda: np.ones(8)[::2], ValueError, r"params\[1\]: must be dense"),
    "negative-strides": (lambda: np.ones(8)[::-1], ValueError, r"params\[1\]: must be dense"),
    "read-only": (lambda: _readonly(np.ones(4)), ValueError, r"params\[1\]: is read-only"),
    "not-an-array": (lambda: [1.0, 2.0], TypeError, r"params\[1\]: expected a numpy.ndarray"),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
@pytest.mark.parametrize("name", NAMES)
def test_bad_param_rejected(name: str, case: str) -> None:
    make, exc, match = BAD_PARAMS[case]
    good = np.linspace(-1, 1, 6)
    copy = good.copy()
    bad = make()
    with pytest.raises(exc, match=match):
        OPTIMIZERS[name]([good, bad])
    assert_same_bits(good, copy, "good param")


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_param_with_non_native_byte_order_is_value_error(name: str) -> None:
    with pytest.raises(ValueError, match=r"params\[0\]: byte order is not native"):
        OPTIMIZERS[name]([_swapped(np.ones(4))])


def test_param_with_non_native_byte_order_is_rejected_somehow() -> None:
    """Whatever the exception type, such a param never reaches a kernel."""
    with pytest.raises((TypeError, ValueError), match=r"params\[0\]"):
        fusedopt.Adam([_swapped(np.ones(4))])


def test_param_listed_twice() -> None:
    p = np.ones(3)
    with pytest.raises(ValueError, match=r"params\[1\]: the same array is listed twice"):
        fusedopt.SGD([p, p])
    with pytest.raises(ValueError, match=r"params\['b'\]: the same array is listed twice"):
        fusedopt.SGD({"a": p, "b": p})
    with pytest.raises(ValueError, match=r"params\[0\]: this array is already in another param group"):
        fusedopt.SGD([{"params": [p]}, {"params": [p]}])
    opt = fusedopt.Adam([p])
    with pytest.raises(ValueError, match=r"already in another param group"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 1


def test_mixing_named_and_unnamed_groups() -> None:
    with pytest.raises(ValueError, match=r"params: all param groups must be given by name, or none"):
        fusedopt.Adam([{"params": {"a": np.ones(2)}}, {"params": [np.ones(2)]}])
    opt = fusedopt.Adam({"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"by name, or none"):
        opt.add_param_group({"params": [np.ones(2)]})
    opt2 = fusedopt.Adam([np.ones(2)])
    with pytest.raises(ValueError, match=r"by name, or none"):
        opt2.add_param_group({"params": {"b": np.ones(2)}})
    assert len(opt.param_groups) == len(opt2.param_groups) == 1


def test_duplicate_name_across_groups() -> None:
    opt = fusedopt.Adam({"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"the name 'a' is already used"):
        opt.add_param_group({"params": {"a": np.ones(2)}})
    # within one construction: a later group's name, or a name given twice in one group (the
    # state is kept under the name: two parameters would share it)
    with pytest.raises(ValueError, match=r"the name 'a' is already used"):
        fusedopt.Adam([{"params": {"a": np.ones(2)}}, {"params": {"b": np.ones(2), "a": np.ones(2)}}])
    for make in (fusedopt.Adam, fusedopt.LBFGS, fusedopt.Muon):
        with pytest.raises(ValueError, match=r"^params: the name 'a' is given twice"):
            make([("a", np.ones((2, 2))), ("b", np.ones((2, 2))), ("a", np.ones((2, 2)))])


def test_many_groups_checked_against_each_other_at_construction() -> None:
    """The constructor checks all its groups in one pass: each is still checked against every
    earlier one, and an error names the group and parameter it is in."""
    buf = np.zeros(40)
    groups = [{"params": [buf[4 * k : 4 * k + 4]]} for k in range(10)]
    fusedopt.SGD(groups, lr=0.1)  # disjoint
    with pytest.raises(ValueError, match=r"^params\[1\]: shares memory with a parameter of another param group"):
        fusedopt.SGD([*groups[:7], {"params": [np.ones(1), buf[2:6]]}], lr=0.1)
    with pytest.raises(ValueError, match=r"^params\['y'\]: shares memory with params\['x'\]"):
        fusedopt.SGD([{"params": {"a": np.ones(2)}}, {"params": {"x": buf[:8], "y": buf[7:9]}}], lr=0.1)
    with pytest.raises(ValueError, match=r"^momentum \(param group 5\): must be >= 0"):
        fusedopt.SGD([*groups[:5], {"params": [np.ones(1)], "momentum": -1.0}], lr=0.1)
    with pytest.raises(ValueError, match=r"^params\[0\]: this array is already in another param group"):
        fusedopt.SGD([*groups, {"params": [groups[3]["params"][0]]}], lr=0.1)
    opt = fusedopt.Adagrad(groups[:3], lr=0.1)  # (Adagrad makes each group's state as it is added)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1, 1] and len(opt.state) == 3


def test_empty_params() -> None:
    with pytest.raises(ValueError, match=r"params: the optimizer got an empty parameter list"):
        fusedopt.Adam([])
    with pytest.raises(ValueError, match=r"empty parameter list"):
        fusedopt.Adam({})


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

SCALAR_HYPERPARAMETERS = {
    "SGD": ["lr", "momentum", "dampening", "weight_decay"],
    "Adagrad": ["lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"],
    "RMSprop": ["lr", "alpha", "eps", "weight_decay", "momentum"],
    "Adam": ["lr", "eps", "weight_decay"],
    "AdamW": ["lr", "eps", "weight_decay"],
    "Adamax": ["lr", "eps", "weight_decay"],
    "NAdam": ["lr", "eps", "weight_decay", "momentum_decay"],
    "RAdam": ["lr", "eps", "weight_decay"],
    "Lion": ["lr", "weight_decay"],
    "Adadelta": ["lr", "rho", "eps", "weight_decay"],
}
HAS_BETAS = ["Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Lion"]
BAD_SCALARS = [-1e-3, -1.0, math.nan, -math.inf]
BAD_BETAS = [((-0.1, 0.9), r"betas\[0\]"), ((1.0, 0.9), r"betas\[0\]"), ((0.9, 1.0), r"betas\[1\]"),
             ((0.9, 1.5), r"betas\[1\]"), ((math.nan, 0.9), r"betas\[0\]"), ((0.9, math.nan), r"betas\[1\]"),
             ((0.9,), r"betas"), ((0.9, 0.99, 0.5), r"betas")]

HP_CASES = [(n, hp) for n, hps in SCALAR_HYPERPARAMETERS.items() for hp in hps]
# torch checks lr at construction only: a scheduler may take it below 0 mid-run.
HP_CASES_AT_STEP = [(n, hp) for n, hp in HP_CASES if hp != "lr"]


@pytest.mark.parametrize("value", BAD_SCALARS, ids=["neg-small", "neg-one", "nan", "neg-inf"])
@pytest.mark.parametrize("name, hp", HP_CASES, ids=[f"{n}-{h}" for n, h in HP_CASES])
def test_bad_scalar_hyperparameter_in_constructor(name: str, hp: str, value: float) -> None:
    p = np.ones(3)
    with pytest.raises(ValueError, match=rf"^{hp}: must be >= 0, got"):
        OPTIMIZERS[name]([p], **{hp: value})
    assert_same_bits(p, np.ones(3), "param")


@pytest.mark.parametrize("name, hp", HP_CASES_AT_STEP, ids=[f"{n}-{h}" for n, h in HP_CASES_AT_STEP])
def test_bad_scalar_hyperparameter_set_between_steps(name: str, hp: str, path: str) -> None:
    """Editing param_groups to an invalid value: the next step raises, naming the value and
    the group, before writing anything (the check is cached per valid value set: an invalid
    one must never be skipped)."""
    a = armed(name, path)
    a.opt.param_groups[-1][hp] = -0.5
    a.assert_rejected(a.grads(2), ValueError, rf"^{hp} \(param group 1\): must be >= 0, got -0.5",
                      call=_step_then_restore(a, -1, hp, a.twin.param_groups[-1][hp]))


def _step_then_restore(a: Armed, gi: int, key: str, good: Any) -> Callable[[Any], Any]:
    def call(grads: Any) -> Any:
        try:
            return a.opt.step(grads)
        finally:
            a.opt.param_groups[gi][key] = good
    return call


@pytest.mark.parametrize("betas, match", BAD_BETAS, ids=[str(b) for b, _ in BAD_BETAS])
@pytest.mark.parametrize("name", HAS_BETAS)
def test_bad_betas(name: str, betas: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OPTIMIZERS[name]([np.ones(3)], betas=betas)


@pytest.mark.parametrize("name", HAS_BETAS)
def test_scalar_betas_rejected(name: str) -> None:
    """betas=0.9 (not a pair): an error either way, never a silent misuse."""
    with pytest.raises((TypeError, ValueError)):
        OPTIMIZERS[name]([np.ones(3)], betas=0.9)


@pytest.mark.parametrize("name", ["Adamax", "NAdam", "RAdam", "Lion"])
def test_scalar_betas_message_names_betas(name: str) -> None:
    with pytest.raises(ValueError, match=r"^betas: expected a pair \(beta1, beta2\), got 0.9"):
        OPTIMIZERS[name]([np.ones(3)], betas=0.9)


def test_scalar_betas_message_names_betas_adam() -> None:
    for cls in (fusedopt.Adam, fusedopt.AdamW):
        with pytest.raises(ValueError, match=r"^betas: expected a pair \(beta1, beta2\), got 0.9"):
            cls([np.ones(3)], betas=0.9)


@pytest.mark.parametrize("name", HAS_BETAS)
def test_bad_betas_set_between_steps(name: str, path: str) -> None:
    a = armed(name, path)
    good = a.opt.param_groups[0]["betas"]
    a.opt.param_groups[0]["betas"] = (0.9, 1.0)
    a.assert_rejected(a.grads(2), ValueError, r"^betas\[1\] \(param group 0\): must be in \[0, 1\)",
                      call=_step_then_restore(a, 0, "betas", good))


@pytest.mark.parametrize("value", [True, "0.1", None, [0.1]])
def test_non_number_hyperparameter_is_type_error(value: Any) -> None:
    with pytest.raises(TypeError, match=r"^lr: expected a number"):
        fusedopt.Adam([np.ones(2)], lr=value)


def test_bool_hyperparameter_rejected_even_after_equal_int_was_checked() -> None:
    warm = fusedopt.SGD([np.ones(2)], lr=1)
    warm.step([np.ones(2)])  # (SGD, lr=1, ...) is now in the cache of checked sets
    opt = fusedopt.SGD([np.ones(2)], lr=0.5)
    opt.step([np.ones(2)])
    opt.param_groups[0]["lr"] = True
    with pytest.raises(TypeError, match=r"^lr \(param group 0\): expected a number"):
        opt.step([np.ones(2)])


def test_bool_hyperparameter_rejected_between_steps() -> None:
    opt = fusedopt.Adam([np.ones(2)], lr=0.5)
    opt.step([np.ones(2)])
    opt.param_groups[0]["lr"] = True  # no equal value was ever checked for Adam's other settings
    opt.param_groups[0]["eps"] = 1.2345e-7
    with pytest.raises(TypeError, match=r"^lr \(param group 0\): expected a number"):
        opt.step([np.ones(2)])


def test_callable_hyperparameter_checked_at_each_step(path: str) -> None:
    """A schedule that turns invalid is caught at the step that would use the value."""
    a = armed("Adam", path)
    a.opt.param_groups[0]["eps"] = lambda step: -1.0 if step >= 2 else 1e-8
    a.assert_rejected(a.grads(2), ValueError, r"^eps \(param group 0\): must be >= 0, got -1.0",
                      call=_step_then_restore(a, 0, "eps", a.twin.param_groups[0]["eps"]))


@pytest.mark.parametrize("kwargs", [{"momentum": 0.9, "dampening": 0.1, "nesterov": True}, {"momentum": 0.0, "nesterov": True}],
                         ids=["with-dampening", "without-momentum"])
def test_nesterov_rules(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"^nesterov: requires momentum > 0 and dampening == 0"):
        fusedopt.SGD([np.ones(2)], **kwargs)


def test_nesterov_rule_checked_between_steps(path: str) -> None:
    a = armed("SGD", path)  # RICH SGD is nesterov with momentum 0.9
    a.opt.param_groups[1]["dampening"] = 0.5
    a.assert_rejected(a.grads(2), ValueError, r"^nesterov \(param group 1\): requires momentum > 0",
                      call=_step_then_restore(a, 1, "dampening", 0.0))


def test_classic_formulation_has_no_dampening() -> None:
    with pytest.raises(ValueError, match=r"^dampening: the classic formulation has no dampening"):
        fusedopt.SGD([np.ones(2)], momentum=0.9, dampening=0.1, formulation="classic")
    with pytest.raises(ValueError, match=r"^formulation: must be one of"):
        fusedopt.SGD([np.ones(2)], formulation="keras")


@pytest.mark.parametrize("option, value, match", [
    ("backend", "cuda", r"^backend must be one of \('native', 'numpy'\), got 'cuda'"),
    ("nonfinite", "ignore", r"^nonfinite must be one of \('propagate', 'skip', 'raise'\), got 'ignore'"),
    ("clip_scope", "layer", r"^clip_scope must be one of \('group', 'global'\), got 'layer'"),
    ("max_grad_norm", -1.0, r"^max_grad_norm: must be >= 0"),
    ("max_grad_norm", math.nan, r"^max_grad_norm: must be >= 0"),
    ("clip_value", -0.5, r"^clip_value: must be >= 0"),
])
@pytest.mark.parametrize("name", NAMES)
def test_bad_options(name: str, option: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OPTIMIZERS[name]([np.ones(2)], **{option: value})


def test_both_clip_modes_rejected() -> None:
    with pytest.raises(ValueError, match=r"max_grad_norm and clip_value: choose one"):
        fusedopt.Adam([np.ones(2)], max_grad_norm=1.0, clip_value=1.0)


def test_add_param_group_with_bad_hyperparameter_adds_nothing() -> None:
    a = Armed("Adam")
    n_groups = len(a.opt.param_groups)
    with pytest.raises(ValueError, match=r"^eps \(param group 2\): must be >= 0"):
        a.opt.add_param_group({"params": [np.ones(3)], "eps": -1.0})
    assert len(a.opt.param_groups) == n_groups
    a.opt.step(a.grads(2))  # still steps with the right number of grads
    a.twin.step(a.grads(2))
    a.assert_same_as_twin("")


# ---------------------------------------------------------------------------------------------
# load_state_dict
# ---------------------------------------------------------------------------------------------


def _mutations() -> dict[str, tuple[Callable[[dict], None], str]]:
    def drop_group(sd: dict) -> None:
        sd["param_groups"].pop()

    def extra_group(sd: dict) -> None:
        sd["param_groups"].append(dict(sd["param_groups"][-1]))

    def wrong_shape(sd: dict) -> None:
        st = sd["state"][max(sd["state"])]
        name = next(n for n, v in st.items() if isinstance(v, np.ndarray))
        st[name] = np.zeros(st[name].size + 1, dtype=st[name].dtype)

    def missing_array(sd: dict) -> None:
        st = sd["state"][max(sd["state"])]
        name = next(n for n, v in st.items() if isinstance(v, np.ndarray))
        del st[name]

    def missing_step(sd: dict) -> None:
        del sd["state"][max(sd["state"])]["step"]

    def step(value: Any) -> Callable[[dict], None]:
        def f(sd: dict) -> None:
            sd["state"][max(sd["state"])]["step"] = value
        return f

    def unknown_key(sd: dict) -> None:
        sd["state"][99] = sd["state"][0]

    def group_size(sd: dict) -> None:
        sd["param_groups"][-1]["params"] = sd["param_groups"][-1]["params"][:-1]

    def bad_eps(sd: dict) -> None:
        group = sd["param_groups"][-1]
        if "eps" not in group and "weight_decay" not in group:  # Rprop
            group["step_sizes"] = (-1.0, 1.0)
            return
        if isinstance(group.get("eps"), (tuple, list)):  # Adafactor's (eps1, eps2)
            group["eps"] = (-1.0, group["eps"][1])
            return
        group["eps" if "eps" in group else "weight_decay"] = -1.0

    def no_state(sd: dict) -> None:
        del sd["state"]

    return {
        "fewer-groups": (drop_group, r"state_dict: has 1 param groups, the optimizer has 2"),
        "more-groups": (extra_group, r"state_dict: has 3 param groups, the optimizer has 2"),
        "wrong-shape": (wrong_shape, r"state_dict: '\w+' of parameter 4 has shape \(10,\), the parameter has \(9,\)"),
        "missing-array": (missing_array, r"state_dict: parameter 4 lacks state \["),
        "missing-step": (missing_step, r"state_dict: parameter 4 lacks 'step'"),
        "negative-step": (step(-1), r"'step' of parameter 4 must be a whole number >= 0, got -1"),
        "fractional-step": (step(2.5), r"'step' of parameter 4 must be a whole number >= 0, got 2.5"),
        "nan-step": (step(math.nan), r"'step' of parameter 4 must be a whole number >= 0, got nan"),
        "unknown-key": (unknown_key, r"state_dict: state for unknown parameter 99"),
        "group-size": (group_size, r"state_dict: param group 1 has 2 params, the optimizer's has 3"),
        "bad-eps": (bad_eps, r"^(eps|eps\[0\]|weight_decay) \(param group 1\): must be >= 0|^step_sizes \(param group 1\): must"),
        "no-state": (no_state, r"state_dict: expected 'state' and 'param_groups' entries"),
    }


LOAD_CASES = _mutations()
# SGD and LARS keep no 'step': the cases about it do not apply to them
_STEP_CASES = {"missing-step", "negative-step", "fractional-step", "nan-step"}
_LOAD_PARAMS = [(n, c) for n in NAMES for c in LOAD_CASES if getattr(fusedopt, n).has_step or c not in _STEP_CASES]


@pytest.mark.parametrize("name, case", _LOAD_PARAMS, ids=[f"{n}-{c}" for n, c in _LOAD_PARAMS])
def test_load_state_dict_rejects_and_changes_nothing(name: str, case: str, path: str) -> None:
    a = armed(name, path)
    other = Armed(name)
    other.opt.step(other.grads(3))
    sd = other.opt.state_dict()  # a valid state dict of the same layout, other values
    mutate, match = LOAD_CASES[case]
    mutate(sd)
    a.assert_rejected(sd, ValueError, match, call=a.opt.load_state_dict)


def test_load_state_dict_infinite_step_is_value_error() -> None:
    a = Armed("Adam")
    sd = a.opt.state_dict()
    sd["state"][4]["step"] = math.inf
    a.assert_rejected(sd, ValueError, r"'step' of parameter 4 must be a whole number", call=a.opt.load_state_dict)


def test_load_state_dict_infinite_step_changes_nothing() -> None:
    """Whatever the exception type, a rejected load leaves everything as it was."""
    a = Armed("Adam")
    sd = a.opt.state_dict()
    sd["state"][4]["step"] = math.inf
    a.assert_rejected(sd, (ValueError, OverflowError), r"infinity|'step'", call=a.opt.load_state_dict)


@pytest.mark.parametrize("name", ["foreach", "fused", "capturable", "differentiable"])
@pytest.mark.parametrize("cls", ["SGD", "AdamW", "Lion"])
def test_torch_switches_name_the_optimizer_and_say_why(cls: str, name: str) -> None:
    params = [np.zeros(3, np.float32)]
    with pytest.raises(TypeError, match=rf"^{cls}\(\) got an unexpected keyword argument '{name}' \(fusedopt is always fused"):
        getattr(fusedopt, cls)(params, lr=0.1, **{name: True})


def test_an_unknown_keyword_names_the_optimizer() -> None:
    with pytest.raises(TypeError, match=r"^Adam\(\) got an unexpected keyword argument 'lrr'$"):
        fusedopt.Adam([np.zeros(3, np.float32)], lrr=0.1)


@pytest.mark.parametrize("make,match", [
    (lambda p: fusedopt.Adafactor([p], beta2_decay=0.5), r"^beta2_decay: must be <= 0, got 0\.5$"),
    (lambda p: fusedopt.Adafactor([p], d=0.5), r"^d: must be >= 1 .*, got 0\.5$"),
    (lambda p: fusedopt.Rprop([p], etas=(2.0, 1.2)), r"^etas: must satisfy .*, got \(2\.0, 1\.2\)$"),
    (lambda p: fusedopt.Rprop([p], step_sizes=[1.0, 0.5]), r"^step_sizes: must satisfy .*, got \(1\.0, 0\.5\)$"),
    (lambda p: fusedopt.NAdam([p], betas=(1 - 1e-9, 0.9)), r"^betas\[0\]: rounds to 1 in float32.*, got 0\.999999999$"),
])
def test_rule_refusals_name_the_value(make: Any, match: str) -> None:
    """A rule's own check (rule header, check()) names the refused value, as the engine's do."""
    with pytest.raises(ValueError, match=match):
        make(np.ones(4, np.float32))


def test_rule_refusal_at_a_step_shows_resolved_callables() -> None:
    """A pair whose item is a callable of the step count is shown as the step resolved it."""
    p = np.ones(4, np.float32)
    opt = fusedopt.Rprop([p], lr=0.1)
    opt.param_groups[0]["etas"] = (lambda t: 2.0, 1.2)
    with pytest.raises(ValueError, match=r"^etas \(param group 0\): must satisfy .*, got \(2\.0, 1\.2\)$"):
        opt.step([np.ones(4, np.float32)])
    assert (p == 1).all() and opt.step_count == 0


@pytest.mark.parametrize("backend", ["native", "numpy"])
@pytest.mark.parametrize("name", NAMES)
def test_numpy_scalar_is_a_0d_parameters_gradient(name: str, backend: str) -> None:
    """What np.sum returns (a NumPy scalar) steps a 0-d parameter as a 0-d array does, on the
    steady path too (a new scalar every step); one of another dtype is refused, nothing written."""
    def make() -> tuple[Any, np.ndarray, np.ndarray]:
        b, w = np.array(1.5, np.float32), np.full(5, 1.5, np.float32)
        return OPTIMIZERS[name]({"b": b, "w": w}, lr=1e-2, backend=backend), b, w
    (by_scalar, b1, w1), (by_array, b2, w2) = make(), make()
    for t in range(4):
        g = np.float32(0.25 * (t + 1))
        by_scalar.step({"b": g, "w": np.full(5, g)})
        by_array.step({"b": np.array(g), "w": np.full(5, g)})
    for (label, got), (_, expected) in zip([("b", b1), ("w", w1), *state_arrays(by_scalar)],
                                           [("b", b2), ("w", w2), *state_arrays(by_array)], strict=True):
        assert_same_bits(got, expected, label)
    before = copies([b1, w1])
    with pytest.raises(TypeError, match=r"grads for parameter 'b': dtype float64 does not match the parameter's float32"):
        by_scalar.step({"b": np.float64(0.5), "w": np.ones(5, np.float32)})
    assert_same_bits(b1, before[0], "b")
    assert_same_bits(w1, before[1], "w")
    assert by_scalar.step_count == 4
