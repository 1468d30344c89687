"""Optimizer state: state_dict round trips, copies, keys, None gradients, editable param
groups, add_param_group, state handed out or not, SGD's two formulations, the
course-material SGDMomentum, callable hyperparameters, exact step counts, and memory."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    DTYPES,
    OPTIMIZERS,
    RICH_CONFIGS,
    Pair,
    assert_same_bits,
    assert_snapshot_equal,
    assert_state_equal,
    check_ulp_bound,
    copies,
    make_grad_stream,
    make_params,
    snapshot,
    using_threads,
)
from fusedopt import reference

NAMES = list(OPTIMIZERS)
SHAPES_G0 = [(6,), (2, 3)]
SHAPES_G1 = [(), (17,)]
SHAPES = SHAPES_G0 + SHAPES_G1
N0 = len(SHAPES_G0)
# A param-group edit that changes the next steps, and a scheduled (callable) hyperparameter:
# lr and weight_decay, except for Rprop (no weight decay; lr only sets the first step sizes).
GROUP_EDIT: dict[str, dict[str, Any]] = {"Rprop": {"etas": (0.3, 1.5), "step_sizes": (1e-5, 5e-3)}}
SCHEDULED: dict[str, dict[str, Any]] = {"Rprop": {"etas": (lambda s: 0.5 - 0.05 * (s % 4), 1.2)}}


def build(name: str, params: list[np.ndarray], named: bool, cfg: dict | None = None, **options: Any) -> Any:
    """Two groups (the second with half the lr), by name or by position."""
    cfg = dict(RICH_CONFIGS[name] if cfg is None else cfg)
    lr1 = cfg.get("lr", 1e-3) / 2
    if named:
        groups = [{"params": {f"w{i}": params[i] for i in range(N0)}},
                  {"params": {f"w{i}": params[i] for i in range(N0, len(params))}, "lr": lr1}]
    else:
        groups = [{"params": params[:N0]}, {"params": params[N0:], "lr": lr1}]
    return OPTIMIZERS[name](groups, **cfg, **options)


def as_grads(row: list[np.ndarray | None], named: bool) -> Any:
    return {f"w{i}": g for i, g in enumerate(row)} if named else list(row)


def hyperparameters(opt: Any) -> list[dict]:
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


# ---------------------------------------------------------------------------------------------
# state_dict
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("named", [False, True], ids=["by-position", "by-name"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NAMES)
def test_round_trip_continues_bitwise(name: str, dtype: Any, named: bool) -> None:
    """Save at step k, build a fresh optimizer (default hyperparameters!) on copies of the
    params at k, load, continue: identical, bit for bit, to the run never interrupted."""
    k, total = 3, 8
    params = make_params(SHAPES, dtype, 1)
    grads = make_grad_stream(SHAPES, dtype, total, 2)
    grads[4][1] = None  # one None gradient after the resume, too
    ref = build(name, copies(params), named)
    for t in range(total):
        if t == k:
            saved = ref.state_dict()
            saved_params = copies(ref.params)
        ref.step(as_grads(grads[t], named))
    fresh = build(name, saved_params, named, cfg={})
    fresh.load_state_dict(saved)
    reloaded = fresh.state_dict()  # what was loaded is what state_dict() gives back
    assert reloaded["param_groups"] == saved["param_groups"]
    assert (reloaded["step_count"], reloaded["skipped_steps"]) == (saved["step_count"], saved["skipped_steps"])
    assert_state_equal(reloaded["state"], saved["state"], "state_dict() after load_state_dict(): ")
    assert hyperparameters(fresh) == hyperparameters(build(name, copies(params), named))
    assert fresh.step_count == k
    for t in range(k, total):
        fresh.step(as_grads(grads[t], named))
    assert_snapshot_equal(snapshot(fresh), snapshot(ref), f"{name} resumed: ")
    assert hyperparameters(fresh) == hyperparameters(ref)
    # the loaded optimizer does not share arrays with the dict it was loaded from
    for st in saved["state"].values():
        for v in st.values():
            if isinstance(v, np.ndarray):
                v.fill(123.0)
    assert_snapshot_equal(snapshot(fresh), snapshot(ref), f"{name} after mutating the loaded dict: ")


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_returns_copies(name: str) -> None:
    params = make_params(SHAPES, np.float32, 3)
    grads = make_grad_stream(SHAPES, np.float32, 4, 4)
    opt = build(name, copies(params), False)
    twin = build(name, copies(params), False)
    for g in grads[:2]:
        opt.step(g)
        twin.step(g)
    sd = opt.state_dict()
    for st in sd["state"].values():
        for key, v in list(st.items()):
            if isinstance(v, np.ndarray):
                v.fill(np.nan)
            else:
                st[key] = v + 100
    sd["param_groups"][0]["lr"] = 99.0
    sd["param_groups"][0]["params"].append("junk")
    sd["step_count"] = 1000
    assert_snapshot_equal(snapshot(opt), snapshot(twin), "after mutating state_dict(): ")
    assert hyperparameters(opt) == hyperparameters(twin)
    assert len(opt.param_groups[0]["params"]) == N0
    for g in grads[2:]:
        opt.step(g)
        twin.step(g)
    assert_snapshot_equal(snapshot(opt), snapshot(twin), "and the next steps: ")


def test_state_dict_keys_are_names_when_names_given() -> None:
    params = make_params(SHAPES, np.float64, 5)
    opt = build("Adam", copies(params), True)
    opt.step(as_grads(make_grad_stream(SHAPES, np.float64, 1, 6)[0], True))
    names = [f"w{i}" for i in range(len(SHAPES))]
    assert list(opt.state) == names
    sd = opt.state_dict()
    assert list(sd["state"]) == names
    assert [g["params"] for g in sd["param_groups"]] == [names[:N0], names[N0:]]
    assert [g["param_names"] for g in sd["param_groups"]] == [names[:N0], names[N0:]]

    opt2 = build("Adam", copies(params), False)
    opt2.step(make_grad_stream(SHAPES, np.float64, 1, 6)[0])
    assert list(opt2.state) == list(range(len(SHAPES)))
    sd2 = opt2.state_dict()
    assert list(sd2["state"]) == list(range(len(SHAPES)))
    assert [g["params"] for g in sd2["param_groups"]] == [[0, 1], [2, 3]]  # positions over all groups
    assert all("param_names" not in g for g in sd2["param_groups"])


def test_state_dict_loads_by_position_across_names() -> None:
    """Keys map by position within groups: a dict saved by name loads into the same layout."""
    params = make_params(SHAPES, np.float64, 5)
    a = build("Adam", copies(params), True)
    a.step(as_grads(make_grad_stream(SHAPES, np.float64, 1, 6)[0], True))
    b = build("Adam", copies(params), True)
    b.load_state_dict(a.state_dict())
    assert list(b.state) == list(a.state)
    for key in a.state:
        assert a.state[key]["step"] == b.state[key]["step"] == 1


def test_state_dict_with_the_same_names_in_another_order_loads_by_name() -> None:
    """A dict of params built in another order gets each parameter's own state (by position
    the two equal-shaped parameters' states would swap); other names load by position, as torch."""
    rng = np.random.default_rng(2)
    start = {"a": rng.standard_normal(5), "b": rng.standard_normal(5)}
    grads = [{"a": rng.standard_normal(5), "b": rng.standard_normal(5)} for _ in range(3)]
    ref = fusedopt.Adam({k: v.copy() for k, v in start.items()}, lr=0.1)
    ref.step(grads[0])
    saved, params_then = ref.state_dict(), {k: v.copy() for k, v in zip("ab", ref.params)}
    for g in grads[1:]:
        ref.step(g)
    swapped = {k: params_then[k].copy() for k in ("b", "a")}
    opt = fusedopt.Adam(swapped, lr=0.1)
    opt.load_state_dict(saved)
    for g in grads[1:]:
        opt.step(g)
    for k, p in zip("ab", ref.params):
        assert_same_bits(swapped[k], p, k)
        assert_same_bits(opt.state[k]["exp_avg"], ref.state[k]["exp_avg"], k)
    other = fusedopt.Adam({"x": start["a"].copy(), "y": start["b"].copy()}, lr=0.1)
    other.load_state_dict(saved)  # other names: by position
    assert_same_bits(other.state["x"]["exp_avg_sq"], saved["state"]["a"]["exp_avg_sq"], "x")


# ---------------------------------------------------------------------------------------------
# None gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_none_grad_creates_no_state_and_keeps_step(name: str, baseline_target: str) -> None:
    params = make_params(SHAPES, np.float64, 7)
    grads = make_grad_stream(SHAPES, np.float64, 4, 8)
    pair = Pair(OPTIMIZERS[name], params, RICH_CONFIGS[name])
    opt = pair.a
    eager = name == "Adagrad"  # torch's Adagrad creates its state at construction
    before_1 = opt.params[1].copy()
    pair.step([grads[0][0], None, grads[0][2], None])
    assert_same_bits(opt.params[1], before_1, "param with a None grad (weight decay must not touch it)")
    if eager:
        assert set(opt.state) == {0, 1, 2, 3}
        assert opt.state[1]["step"] == 0 and opt.state[3]["step"] == 0
        assert np.all(opt.state[1]["sum"] == RICH_CONFIGS[name]["initial_accumulator_value"])
    else:
        assert set(opt.state) == {0, 2}
    pair.step([grads[1][0], grads[1][1], None, None])
    pair.step(grads[2])
    pair.assert_bitwise(f"{name} vs reference: ")
    if OPTIMIZERS[name].has_step:
        assert [opt.state[k]["step"] for k in range(4)] == [3, 2, 2, 1]
    else:
        assert set(opt.state) == {0, 1, 2, 3} and all("step" not in st for st in opt.state.values())
    # the late parameter's first step is a first step (SGD: buffer = grad; Adam: t = 1)
    late = OPTIMIZERS[name]([params[3].copy()], **RICH_CONFIGS[name])
    late.step([grads[2][3]])
    assert_same_bits(opt.params[3], late.params[0], "late parameter vs its own first step")
    assert opt.step_count == 3


def test_all_none_step_is_a_no_op_but_counts() -> None:
    params = make_params(SHAPES, np.float32, 9)
    opt = fusedopt.Adam(copies(params))
    opt.step([None] * len(SHAPES))
    for p, p0 in zip(opt.params, params):
        assert_same_bits(p, p0, "param")
    assert opt.state == {}
    assert opt.step_count == 1  # a step happened (callables see 1 next time), nothing moved


# ---------------------------------------------------------------------------------------------
# Editable param groups, add_param_group, state handed out or not
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_editable_between_steps(name: str, baseline_target: str) -> None:
    params = make_params(SHAPES, np.float32, 10)
    grads = make_grad_stream(SHAPES, np.float32, 6, 11)
    cfg = RICH_CONFIGS[name]
    pair = Pair(OPTIMIZERS[name], params, cfg)
    unchanged = OPTIMIZERS[name](copies(params), **cfg)
    for t, g in enumerate(grads):
        if t == 3:
            for opt in (pair.a, pair.b):
                opt.param_groups[0].update(GROUP_EDIT.get(name, {"lr": cfg["lr"] * 3, "weight_decay": 0.2}))
        pair.step(g, look=False)  # state not handed out: the edit must be seen on that path too
        unchanged.step(g)
        pair.assert_bitwise(f"{name} step {t + 1}: ")
    pair.refresh()
    pair.assert_bitwise(f"{name} end: ")
    assert any(not np.array_equal(p, q) for p, q in zip(pair.a.params, unchanged.params)), "the edit had no effect"


@pytest.mark.parametrize("name", NAMES)
def test_add_param_group_mid_run(name: str, baseline_target: str) -> None:
    params = make_params(SHAPES, np.float64, 12)
    extra = make_params([(5,), (1,)], np.float64, 13)
    grads = make_grad_stream(SHAPES, np.float64, 5, 14)
    extra_grads = make_grad_stream([(5,), (1,)], np.float64, 5, 15)
    pair = Pair(OPTIMIZERS[name], params, RICH_CONFIGS[name])
    for t in range(2):
        pair.step(grads[t], look=False)
    for opt in (pair.a, pair.b):
        opt.add_param_group({"params": copies(extra), "lr": RICH_CONFIGS[name]["lr"] * 2})
    assert len(pair.a.param_groups) == 2
    for t in range(2, 5):
        pair.step(grads[t] + extra_grads[t], look=False)
        pair.assert_bitwise(f"{name} step {t + 1}: ")
    pair.refresh()
    pair.assert_bitwise(f"{name}: ")
    for p, p0 in zip(pair.a.params[len(SHAPES):], extra):
        assert not np.array_equal(p, p0)
    if OPTIMIZERS[name].has_step:
        assert pair.a.state[len(SHAPES)]["step"] == 3 and pair.a.state[0]["step"] == 5


def _scripted_run(name: str, look: bool) -> dict:
    """A run with every kind of change between steps; `look` reads opt.state after each step
    (handing the state out: every later step re-reads the dicts), else the optimizer keeps to
    its own counters."""
    params = make_params(SHAPES, np.float64, 16)
    grads = make_grad_stream(SHAPES, np.float64, 12, 17)
    extra = make_params([(4,)], np.float64, 18)
    extra_grads = make_grad_stream([(4,)], np.float64, 12, 19)
    opt = OPTIMIZERS[name](copies(params), **{**RICH_CONFIGS[name], "lr": lambda s: 1e-3 * (1 + s % 3)})
    for t in range(12):
        row: list = list(grads[t])
        if t == 3:
            row = [None] * len(row)  # the whole group skips: its step counts stay equal
        if t == 5:
            opt.param_groups[0]["weight_decay"] = 0.0
        if t == 6:
            opt.add_param_group({"params": copies(extra)})
        if t >= 6:
            row = row + ([None] if t == 8 else [extra_grads[t][0]])
        if t == 9 and name in ("Adam", "AdamW"):
            opt.param_groups[0]["amsgrad"] = False  # drops a state slot from the kernel call
        opt.step(row)
        if look:
            _ = opt.state
    return snapshot(opt)


@pytest.mark.parametrize("name", NAMES)
def test_own_counters_path_equals_handed_out_path(name: str) -> None:
    assert_snapshot_equal(_scripted_run(name, look=False), _scripted_run(name, look=True), f"{name}: ")


def test_replacing_a_param_in_its_group_list_is_honoured() -> None:
    old = np.ones(3)
    opt = fusedopt.SGD([old], lr=0.1, momentum=0.9)
    opt.step([np.ones(3)])
    opt.step([np.ones(3)])  # the plan is built and reused
    new = np.zeros(3)
    opt.param_groups[0]["params"][0] = new
    old_before = old.copy()
    opt.step([np.ones(3)])
    assert_same_bits(old, old_before, "the replaced array")
    assert not np.array_equal(new, np.zeros(3)), "the new array was not updated"


def test_held_state_dict_sees_current_step() -> None:
    opt = fusedopt.Adam([np.ones(3)], lr=0.1)
    opt.step([np.ones(3)])
    st = opt.state[0]
    opt.step([np.ones(3)])
    opt.step([np.ones(3)])
    opt.step([np.ones(3)])
    assert st["step"] == 4


def test_state_property_is_current() -> None:
    opt = fusedopt.NAdam([np.ones(3)], lr=0.1)
    for t in range(1, 5):
        opt.step([np.ones(3)])
        if t % 2 == 0:
            assert opt.state[0]["step"] == t
    assert opt.state[0]["step"] == 4 and opt.state_dict()["state"][0]["step"] == 4


# ---------------------------------------------------------------------------------------------
# SGD formulations and the course-material interface
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sgd_formulations_agree_at_constant_lr_and_differ_when_it_changes(dtype: Any, nesterov: bool) -> None:
    """torch: buf = mu*buf + g; p -= lr*buf.  classic: v = mu*v - lr*g; p += v.  With a
    constant lr, v = -lr*buf exactly in real arithmetic, so they differ by rounding only (each
    step rounds a few operations differently: 4 ulp of |p| per step bounds it); once lr changes,
    torch rescales the whole buffer, classic only new gradients: a real difference."""
    steps, change_at = 30, 10
    params = make_params([(500,)], dtype, 20)  # |p| in [0.5, 2): stays away from 0 at this lr
    grads = make_grad_stream([(500,)], dtype, steps, 21)
    kw = {"lr": 1e-3, "momentum": 0.9, "nesterov": nesterov}
    torch_f = fusedopt.SGD(copies(params), **kw)
    classic = fusedopt.SGD(copies(params), formulation="classic", **kw)
    for t, g in enumerate(grads, start=1):
        torch_f.step(g)
        classic.step(g)
        a, b = torch_f.params[0], classic.params[0]
        check_ulp_bound(a, b, np.zeros_like(a), 4 * t, where=f"constant lr, step {t}: ")
    sched = lambda s: 1e-3 if s < change_at else 1e-4
    torch_f = fusedopt.SGD(copies(params), **{**kw, "lr": sched})
    classic = fusedopt.SGD(copies(params), formulation="classic", **{**kw, "lr": sched})
    for t, g in enumerate(grads, start=1):
        torch_f.step(g)
        classic.step(g)
        a, b = torch_f.params[0], classic.params[0]
        if t <= change_at:
            check_ulp_bound(a, b, np.zeros_like(a), 4 * t, where=f"before the lr change, step {t}: ")
    rel = np.max(np.abs(a - b) / np.abs(a))
    assert rel > 1e-3, f"formulations should differ after an lr change, max rel diff {rel}"


@pytest.mark.parametrize("nesterov", [False, True], ids=["plain", "nesterov"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sgd_momentum_update_equals_course_formula(dtype: Any, nesterov: bool, target: str) -> None:
    """SGDMomentum(learning_rate, momentum).update(params, grads) is
        v = mu*v - lr*g;  p += v                     (nesterov: p += -mu*v_prev + (1+mu)*v)
    written in NumPy. Bitwise on baseline; on FMA targets the kernel fuses d*(-lr) + mu*v (and
    the Nesterov combination): checked per step after resynchronising, within 2k+1 = 5 ulp
    (k = 2 fused ops; see test_core_parity.py) of the terms' magnitude."""
    lr, mu = 0.05, 0.9
    shapes = [(33,), (4, 5), ()]
    params = make_params(shapes, dtype, 22)
    grads = make_grad_stream(shapes, dtype, 25, 23)
    opt = fusedopt.SGDMomentum(lr, mu, nesterov=nesterov)
    ps = copies(params)
    mine = copies(params)
    vs = [np.zeros_like(p) for p in params]
    for t, g in enumerate(grads, start=1):
        out = opt.update(ps, g)
        assert out is ps
        olds = [m.copy() for m in mine]
        v_olds = [v.copy() for v in vs]
        for i, (p, v, gi) in enumerate(zip(mine, vs, g)):
            v_prev = v.copy()
            v[...] = mu * v - lr * gi
            if nesterov:
                p += -mu * v_prev + (1 + mu) * v
            else:
                p += v
        state = [opt.state[i]["momentum_buffer"] for i in range(len(shapes))]
        if target == "baseline":
            for i in range(len(shapes)):
                assert_same_bits(ps[i], mine[i], f"step {t} param {i}")
                assert_same_bits(state[i], vs[i], f"step {t} velocity {i}")
        else:
            for i in range(len(shapes)):
                floor = np.maximum(np.abs(olds[i]), np.abs(mine[i] - olds[i]))
                check_ulp_bound(ps[i], mine[i], floor, 5, where=f"step {t} param {i}: ")
                v_floor = np.maximum(np.abs(v_olds[i]), np.abs(vs[i] - v_olds[i]))
                check_ulp_bound(state[i], vs[i], v_floor, 5, where=f"step {t} velocity {i}: ")
                mine[i][...] = ps[i]
                vs[i][...] = state[i]
    with pytest.raises(ValueError, match=r"update\(\) must be called with the same arrays"):
        opt.update(copies(ps), grads[0])
    assert opt.learning_rate == lr and opt.momentum == mu


# ---------------------------------------------------------------------------------------------
# Callable hyperparameters
# ---------------------------------------------------------------------------------------------


class Recorder:
    """lr schedule that records the step counts it is called with."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, step: int) -> float:
        self.calls.append(step)
        return 1e-3 * (1 + step) / (1 + 0.1 * step * step)


@pytest.mark.parametrize("name", NAMES)
def test_callable_lr_evaluated_at_step_count(name: str) -> None:
    params = make_params(SHAPES, np.float64, 24)
    grads = make_grad_stream(SHAPES, np.float64, 6, 25)
    rec = Recorder()
    opt = OPTIMIZERS[name](copies(params), **{**RICH_CONFIGS[name], "lr": rec})
    manual = OPTIMIZERS[name](copies(params), **RICH_CONFIGS[name])
    for t, g in enumerate(grads):
        rec.calls.clear()
        assert opt.step_count == t
        opt.step(g)
        assert rec.calls and rec.calls[0] == t, f"step {t}: the schedule saw {rec.calls}"
        assert set(rec.calls) <= {t, t + 1}  # (t + 1: see test_schedule_not_called_ahead)
        manual.param_groups[0]["lr"] = rec(t)
        manual.step(g)
        if t % 2:
            _ = opt.state  # hands the state out from the second step on
    assert_snapshot_equal(snapshot(opt), snapshot(manual), f"{name} callable vs manual lr: ")


def test_schedule_not_called_ahead() -> None:
    lrs = [0.1, 0.05, 0.01]
    seen: list[int] = []

    def lr(s: int) -> float:
        seen.append(s)
        return lrs[s]

    opt = fusedopt.SGD([np.ones(3)], lr=lr, momentum=0.9)
    for _ in range(3):
        opt.step([np.ones(3)])
        _ = opt.state  # e.g. logging: every step re-reads the handed-out state dicts
    assert max(seen) == 2


@pytest.mark.parametrize("name", NAMES)
def test_callable_hyperparameters_resume_bitwise(name: str) -> None:
    k, total = 4, 9
    params = make_params(SHAPES, np.float32, 26)
    grads = make_grad_stream(SHAPES, np.float32, total, 27)
    cfg = {**RICH_CONFIGS[name], "lr": Recorder(), **SCHEDULED.get(name, {"weight_decay": lambda s: 0.01 * (s % 4)})}
    ref = OPTIMIZERS[name](copies(params), **cfg)
    for t in range(total):
        if t == k:
            saved, saved_params = ref.state_dict(), copies(ref.params)
        ref.step(grads[t])
    fresh = OPTIMIZERS[name](saved_params, **cfg)
    fresh.load_state_dict(saved)
    for t in range(k, total):
        fresh.step(grads[t])
    assert_snapshot_equal(snapshot(fresh), snapshot(ref), f"{name} resumed with schedules: ")


# ---------------------------------------------------------------------------------------------
# Step counts beyond float32's exact range
# ---------------------------------------------------------------------------------------------


def test_step_count_exact_beyond_2_pow_24(baseline_target: str) -> None:
    """torch keeps 'step' in a float32 tensor, exact only up to 2**24. Here it is an int: load
    'step' = 2**24 + 5, take one step, and the bias corrections use t = 2**24 + 6 exactly (the
    betas are chosen so that a float32 counter's t, 2**24 + 4, gives another result)."""
    t0 = 2**24 + 5
    betas = (1 - 1e-7, 1 - 1e-8)  # beta**t far from 0 and 1 at t ~ 1.7e7
    lr, eps = 1e-2, 1e-8
    shape = (64,)
    p0 = make_params([shape], np.float64, 28)[0]
    g = make_grad_stream([shape], np.float64, 1, 29)[0][0]
    m0 = make_grad_stream([shape], np.float64, 1, 30)[0][0] * 0.1
    v0 = np.abs(make_grad_stream([shape], np.float64, 1, 31)[0][0]) * 0.01

    def run(backend: str) -> Any:
        opt = fusedopt.Adam([p0.copy()], lr=lr, betas=betas, eps=eps, backend=backend)
        sd = opt.state_dict()
        sd["state"] = {0: {"step": t0, "exp_avg": m0.copy(), "exp_avg_sq": v0.copy()}}
        opt.load_state_dict(sd)
        opt.step([g])
        return opt

    native = run("native")
    numpy_backend = run("numpy")
    st = native.state[0]
    assert type(st["step"]) is int and st["step"] == t0 + 1
    assert_same_bits(native.params[0], numpy_backend.params[0], "native vs numpy backend")

    def by_hand(t: float) -> np.ndarray:
        p, m, v = p0.copy(), m0.copy(), v0.copy()
        b1, b2 = betas
        reference.adam(p, g, m, v, None, step=t - 1, lr=lr, betas=(b1, b2), eps=eps, weight_decay=0.0,
                       amsgrad=False, decoupled_weight_decay=False)
        return p

    exact = by_hand(float(t0 + 1))
    assert_same_bits(native.params[0], exact, "Adam with t = 2**24 + 6")
    # a float32 counter could not even hold the loaded 2**24 + 5 (it stores 2**24 + 4), and
    # adding 1 rounds back to 2**24 + 4 (ties to even): torch's t would be stuck there
    as_float32 = float(np.float32(np.float32(t0) + np.float32(1)))
    assert as_float32 == 2**24 + 4
    assert not np.array_equal(by_hand(as_float32), exact), "the test must tell t from float32(t)"
    # and state_dict / load_state_dict keep the int exact
    again = fusedopt.Adam([p0.copy()], lr=lr, betas=betas, eps=eps)
    again.load_state_dict(native.state_dict())
    assert again.state[0]["step"] == t0 + 1


def test_huge_step_count_loads_exactly() -> None:
    opt = fusedopt.Adam([np.ones(2)])
    opt.step([np.ones(2)])
    sd = opt.state_dict()
    sd["state"][0]["step"] = 2**53 + 1
    opt.load_state_dict(sd)
    assert opt.state[0]["step"] == 2**53 + 1


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def _settled() -> int:
    """Traced bytes now, after a collection. CPython 3.11's type attribute cache keeps a strong
    reference to recently looked-up attribute names, keyed by the string's address: a name
    built afresh every step ("add_" + rule in the optimizer) fills up to 4096 slots (~30 KB
    here, bounded) and would read as growth; clearing the cache shows what is really held."""
    gc.collect()
    clear = getattr(sys, "_clear_internal_caches", None) or sys._clear_type_cache  # 3.13+ / older
    clear()
    return tracemalloc.get_traced_memory()[0]


def test_no_memory_growth_over_1000_adam_steps() -> None:
    """1000 steps of Adam over a 1M-element float32 array: the per-step Python allocations are
    all freed (current traced memory after 1000 steps within 16 KiB of after 10), and no step
    allocates anything array-sized (peak within 256 KiB of the settled current; one temporary
    copy of the array would be 4 MB)."""
    n = 1_000_000
    p = np.linspace(-1, 1, n, dtype=np.float32)
    g = np.full(n, 0.25, dtype=np.float32)
    g[::3] = -0.5
    with using_threads(1):  # the question is memory, not threads (and 1 thread is steady in time)
        opt = fusedopt.Adam([p], lr=1e-3)
        tracemalloc.start()
        try:
            for _ in range(10):
                opt.step([g])
            after_10 = _settled()
            tracemalloc.reset_peak()
            for _ in range(990):
                opt.step([g])
            peak = tracemalloc.get_traced_memory()[1]
            after_1000 = _settled()
        finally:
            tracemalloc.stop()
    assert opt.step_count == 1000 and opt.state[0]["step"] == 1000
    assert after_10 >= 2 * 4 * n, "the state arrays (2 x 4 MB) should be traced"
    assert after_1000 - after_10 < 16 * 1024, f"grew by {after_1000 - after_10} bytes over 990 steps"
    assert peak - after_10 < 256 * 1024, f"a step's transient allocations peaked at {peak - after_10} bytes"
