"""The native engine's promises (issue: the step in one native call): a steady step runs a
bounded number of Python lines; one optimizer stepped from several threads serializes; a step
is never cut in half by Ctrl-C; state arrays replaced through ``opt.state`` are checked and
used; arrays reallocated behind the optimizer's back are noticed; pickle and copies continue
bitwise."""

from __future__ import annotations

import copy
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any

import fusedopt
import numpy as np
import pytest

from conftest import OPTIMIZERS, RICH_CONFIGS, assert_same_bits

NAMES = list(OPTIMIZERS)
SHAPES = [(33,), (4, 5), (17,)]


def _model(dtype: Any = np.float32, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in SHAPES]
    grads = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    return params, grads


def _make(name: str, params: list[np.ndarray], **extra: Any) -> Any:
    return OPTIMIZERS[name]([{"params": params[:2]}, {"params": params[2:], "lr": 2e-3}], **RICH_CONFIGS[name], **extra)


def _assert_same_optimizer(a: Any, b: Any) -> None:
    assert a.step_count == b.step_count and a.skipped_steps == b.skipped_steps
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        assert sa["state"][k].keys() == sb["state"][k].keys()
        for name, v in sa["state"][k].items():
            if isinstance(v, np.ndarray):
                assert_same_bits(v, sb["state"][k][name], f"state[{k!r}][{name!r}]")
            else:
                assert v == sb["state"][k][name]
    for i, (x, y) in enumerate(zip(a.params, b.params)):
        assert_same_bits(x, y, f"param {i}")


# ---- Python work per step ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_steady_step_runs_at_most_ten_python_lines(name: str) -> None:
    """Counted with sys.settrace: every line executed in fusedopt's own Python files during a
    steady step (three groups, many arrays)."""
    rng = np.random.default_rng(1)
    params = [rng.uniform(0.5, 2.0, (8,)).astype(np.float32) for _ in range(30)]
    grads = [rng.standard_normal(8).astype(np.float32) for _ in range(30)]
    opt = OPTIMIZERS[name]([{"params": params[i::3]} for i in range(3)], lr=1e-3)
    grads = grads[0::3] + grads[1::3] + grads[2::3]
    opt.step(grads)
    opt.step(grads)
    root = os.path.dirname(fusedopt.__file__)
    lines = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        if frame.f_code.co_filename.startswith(root):
            if event == "line":
                lines += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        opt.step(grads)
    finally:
        sys.settrace(None)
    assert 0 < lines <= 10, f"{lines} Python lines in fusedopt for one steady step"


# ---- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["SGD", "Adam", "NAdam", "RMSprop"])
def test_threads_stepping_one_optimizer_serialize(name: str) -> None:
    """Two threads step one optimizer 40 times each with the same gradients (so the order of
    steps does not matter) while a third reads state_dict(): the result is bitwise the serial
    80 steps, and every snapshot is taken between steps (all counters agree)."""
    params, grads = _model(np.float64)
    twin_params = [p.copy() for p in params]
    opt, twin = _make(name, params), _make(name, twin_params)
    for _ in range(80):
        twin.step(grads)
    errors: list[BaseException] = []
    done = threading.Event()

    def stepper() -> None:
        try:
            for _ in range(40):
                opt.step(grads)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def reader() -> None:
        try:
            while not done.is_set():
                sd = opt.state_dict()
                steps = {st["step"] for st in sd["state"].values() if "step" in st}
                if steps:
                    assert steps == {sd["step_count"]}, (steps, sd["step_count"])
                _ = opt.state
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=stepper) for _ in range(2)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    r.join()
    assert not errors, errors
    _assert_same_optimizer(opt, twin)


def test_grads_container_changed_by_another_thread_mid_step() -> None:
    """The step owns its gradients: another thread replacing the entries of the list it was
    given (dropping the only reference to an array) while the kernels run without the GIL must
    not free them under the kernels. (A freed buffer may well still hold ones, so this test can
    miss the fault without a sanitizer; it pins the behaviour for the sanitizer run of issue 13.)"""
    n = 1 << 18
    p = np.zeros(n, np.float32)
    opt = fusedopt.SGD([p], lr=1.0)
    grads: list[Any] = [np.ones(n, np.float32)]
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            grads[0] = np.ones(n, np.float32)  # the previous array loses its last reference

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(200):
            opt.step(grads)
    finally:
        stop.set()
        t.join()
    assert opt.step_count == 200
    assert np.all(p == -200.0), "every step read a whole gradient of ones"


def test_callable_that_steps_its_own_optimizer_is_refused() -> None:
    p = np.ones(3)
    opt = fusedopt.SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = lambda step: (opt.step([np.ones(3)]), 0.1)[1]
    with pytest.raises(ValueError, match="in the middle of a step"):
        opt.step([np.ones(3)])
    assert opt.step_count == 0 and np.array_equal(p, np.ones(3))


# ---- Ctrl-C -----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs pthread_kill")
def test_sigint_never_splits_a_step() -> None:
    """SIGINT sent repeatedly while large steps run: whenever KeyboardInterrupt lands, the
    parameters and state are exactly those of step_count whole steps. The handler raises
    KeyboardInterrupt, as Python's default one does, but only around the step call, so the
    test's own bookkeeping is never interrupted."""
    rng = np.random.default_rng(3)
    n = 1 << 20
    p = rng.uniform(0.5, 2.0, n)
    g = rng.standard_normal(n)
    opt = fusedopt.Adam([p], lr=1e-3)
    # A first step creates state through numpy.zeros_like, Python code where an interrupt can
    # land and abort that step whole; take it first, so that the steps below can complete.
    opt.step([g])
    main = threading.get_ident()
    stop = threading.Event()
    armed = [False]
    interrupts = [0]

    def on_sigint(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            interrupts[0] += 1
            raise KeyboardInterrupt

    def interrupter() -> None:
        while not stop.is_set():
            time.sleep(0.003)
            signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, on_sigint)
    t = threading.Thread(target=interrupter)
    t.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                armed[0] = True
                opt.step([g])
                armed[0] = False
            except KeyboardInterrupt:
                pass
    finally:
        armed[0] = False
        stop.set()
        t.join()
        signal.signal(signal.SIGINT, previous)
    twin_p = np.random.default_rng(3).uniform(0.5, 2.0, n)  # the same draw as p
    twin = fusedopt.Adam([twin_p], lr=1e-3)
    for _ in range(opt.step_count):
        twin.step([g])
    assert interrupts[0] > 0 and opt.step_count > 1
    assert opt.state[0]["step"] == opt.step_count
    _assert_same_optimizer(opt, twin)


# ---- state replaced through opt.state, arrays reallocated ------------------------------------


def test_replaced_state_array_is_used() -> None:
    """A state array or counter set through opt.state is checked and then used: the new array
    is updated in place by the next step, and the step count continues from the new value."""
    params, grads = _model(np.float64)
    opt = _make("Adam", params)
    opt.step(grads)
    new = np.full(SHAPES[1], 0.25)
    opt.state[1]["exp_avg"] = new
    opt.state[0]["step"] = 7
    opt.step(grads)
    assert opt.state[1]["exp_avg"] is new
    assert not np.any(new == 0.25), "the replacement was not read and written by the step"
    assert opt.state[0]["step"] == 8 and opt.state[1]["step"] == 2
    # the same as an optimizer loaded with those values
    twin_params, _ = _model(np.float64)
    twin = _make("Adam", twin_params)
    twin.step(grads)
    sd = twin.state_dict()
    sd["state"][1]["exp_avg"] = np.full(SHAPES[1], 0.25)
    sd["state"][0]["step"] = 7
    twin.load_state_dict(sd)
    twin.step(grads)
    _assert_same_optimizer(opt, twin)


@pytest.mark.parametrize("bad, exc, match", [
    ("alias-param", ValueError, r"share memory"),
    ("alias-grad", ValueError, r"share memory"),
    ("float32", TypeError, r"exp_avg for parameter 1: dtype float32 does not match"),
    ("shape", ValueError, r"exp_avg for parameter 1: shape \(20,\) does not match"),
    ("fortran", ValueError, r"exp_avg for parameter 1: its memory layout \(strides\) is not the parameter's"),
])
def test_bad_replaced_state_array_is_rejected_and_nothing_changes(bad: str, exc: type, match: str) -> None:
    params, grads = _model(np.float64)
    opt = _make("Adam", params)
    opt.step(grads)
    replacement = {
        "alias-param": params[1],
        "alias-grad": grads[1],
        "float32": np.zeros(SHAPES[1], np.float32),
        "shape": np.zeros(20),
        "fortran": np.zeros((5, 4)).T,  # shape (4, 5), not C-contiguous
    }[bad]
    opt.state[1]["exp_avg"] = replacement
    before = [a.copy() for a in opt.params] + [g.copy() for g in grads]
    with pytest.raises(exc, match=match):
        opt.step(grads)
    for a, b in zip(list(opt.params) + grads, before):
        assert_same_bits(a, b, "array after the rejected step")
    assert opt.step_count == 1 and opt.state[0]["step"] == 1


def test_state_read_while_a_replacement_is_bad_then_fixed() -> None:
    """state_dict() while a replaced state array is wrong shows the state as it stands (the
    step reports what is wrong); put right, the optimizer continues as if nothing happened."""
    params, grads = _model(np.float64)
    opt = _make("Adam", params)
    opt.step(grads)
    good = opt.state[1]["exp_avg"]
    opt.state[1]["exp_avg"] = np.zeros(20)
    sd = opt.state_dict()
    assert sd["state"][1]["exp_avg"].shape == (20,) and sd["state"][0]["step"] == 1
    with pytest.raises(ValueError, match=r"exp_avg for parameter 1: shape \(20,\)"):
        opt.step(grads)
    opt.state[1]["exp_avg"] = good
    assert opt.state_dict()["state"][1]["step"] == 1
    opt.step(grads)
    twin_params, _ = _model(np.float64)
    twin = _make("Adam", twin_params)
    twin.step(grads)
    twin.step(grads)
    _assert_same_optimizer(opt, twin)


def test_reallocated_parameter_is_noticed() -> None:
    params, grads = _model(np.float64)
    opt = _make("Adam", params)
    opt.step(grads)
    params[0].resize((66,), refcheck=False)  # new memory behind the optimizer's back
    with pytest.raises(ValueError, match=r"exp_avg for parameter 0: shape \(33,\) does not match the parameter's \(66,\)"):
        opt.step(grads)
    assert opt.step_count == 1


@pytest.mark.parametrize("name", NAMES)
def test_a_parameter_replaced_in_its_group_keeps_its_counters(name: str) -> None:
    """A new array put in a group's list (same place, so same key and state dict) continues from
    the old one's counters, whether or not opt.state was ever read (found by fusedopt.torch,
    where p.data = ... does this: the step count fell back to the state dict's stale 1)."""
    params, grads = _model(np.float64)
    opt = _make(name, params)
    twin = _make(name, [p.copy() for p in params])
    for _ in range(5):
        opt.step(grads)
        twin.step(grads)
    opt.param_groups[0]["params"][0] = opt.params[0].copy()
    for _ in range(2):
        opt.step(grads)
        twin.step(grads)
    _assert_same_optimizer(opt, twin)
    assert opt.state[0].get("step", 7) == 7


# ---- pickle and copies -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
@pytest.mark.parametrize("steps_before", [0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_copies_continue_bitwise(name: str, steps_before: int, how: str) -> None:
    """A pickled or deep-copied optimizer has its own arrays and continues bitwise like the original."""
    params, grads = _model(np.float64)
    opt = _make(name, params, max_grad_norm=1.0)
    for _ in range(steps_before):
        opt.step(grads)
    other = pickle.loads(pickle.dumps(opt)) if how == "pickle" else copy.deepcopy(opt)
    assert all(a is not b for a, b in zip(opt.params, other.params))
    _assert_same_optimizer(opt, other)
    for _ in range(4):
        opt.step(grads)
        other.step(grads)
    _assert_same_optimizer(opt, other)


@pytest.mark.parametrize("steps_before", [0, 3])
@pytest.mark.parametrize("name", NAMES)
def test_shallow_copy_shares_arrays_not_counters(name: str, steps_before: int) -> None:
    """copy.copy shares the arrays (as a shallow copy of any container does) but not the engine:
    stepping the copy moves the shared parameters and only the copy's counters."""
    params, grads = _model(np.float64)
    opt = _make(name, params)
    for _ in range(steps_before):
        opt.step(grads)
    other = copy.copy(opt)
    assert all(a is b for a, b in zip(opt.params, other.params))
    before = [p.copy() for p in opt.params]
    for _ in range(2):
        other.step(grads)
    assert other.step_count == steps_before + 2 and opt.step_count == steps_before
    assert any(not np.array_equal(p, b) for p, b in zip(opt.params, before))
