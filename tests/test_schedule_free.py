"""Schedule-Free SGD and AdamW: against the schedulefree package (live, 30 steps, both dtypes,
every target, with train()/eval() swaps on the way), native against the NumPy reference
(bitwise on baseline, every step, every state entry and counter), the swap, state_dict /
pickle, and bad input."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import DTYPES, Pair, assert_same_bits, make_grad_stream, make_params, snapshot, assert_snapshot_equal

SHAPES = [(3, 2), (17,), (), (1000,), (1,)]
SPLIT = 2  # params[:SPLIT] in group 0, the rest in group 1 (its own lr)
STEPS = 30
SWAP_AT = (10, 20)  # eval() then train() after these steps
TOL = {np.float32: (1e-5, 1e-6), np.float64: (1e-10, 1e-12)}  # the torch-parity suite's

CONFIGS = {
    "SGDScheduleFree": [
        {"lr": 0.05},
        {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1, "warmup_steps": 5},
        {"lr": 0.02, "r": 1.0, "weight_lr_power": 0.0, "warmup_steps": 40},
    ],
    "AdamWScheduleFree": [
        {"lr": 1e-2},
        {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1, "warmup_steps": 5, "eps": 1e-6},
        {"lr": 5e-3, "r": 0.5, "weight_lr_power": 1.0, "warmup_steps": 40},
        # 1 - beta2^t is exactly 1 from step 13 on in float32, 28 in float64 (the kernels skip
        # dividing by it then)
        {"lr": 1e-2, "betas": (0.9, 0.25)},
    ],
}
CASES = [pytest.param(name, cfg, id=f"{name}-{i}") for name, cfgs in CONFIGS.items() for i, cfg in enumerate(cfgs)]


def groups(params: list[Any], lr: float) -> list[dict[str, Any]]:
    return [{"params": params[:SPLIT]}, {"params": params[SPLIT:], "lr": lr * 3}]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cfg", CASES)
def test_matches_schedulefree(target: str, dtype: Any, name: str, cfg: dict[str, Any]) -> None:
    """SGD: bit for bit on the FMA targets (torch fuses add-with-alpha and lerp as fusedopt
    does there). AdamW: to the parity suite's tolerance (torch's sqrt is not correctly rounded);
    on baseline both to that tolerance (torch's fused ops rounded twice)."""
    torch = pytest.importorskip("torch")
    sf = pytest.importorskip("schedulefree")
    params = make_params(SHAPES, dtype, 1)
    grads = make_grad_stream(SHAPES, dtype, STEPS, 2)
    tp = [torch.tensor(p.copy()) for p in params]
    theirs = getattr(sf, name)(groups(tp, cfg["lr"]), **cfg)
    ours = getattr(fusedopt, name)(groups([p.copy() for p in params], cfg["lr"]), **cfg)
    theirs.train()
    ours.train()
    exact = target != "baseline" and name == "SGDScheduleFree"
    rtol, atol = TOL[dtype]

    def compare(where: str) -> None:
        pairs = [(f"param {i}", a, b.numpy()) for i, (a, b) in enumerate(zip(ours.params, tp))]
        state = ours._engine.snapshot(copy_arrays=False)[0]
        for i, p in enumerate(tp):
            for slot, value in theirs.state[p].items():
                pairs.append((f"state[{i}][{slot}]", state[i][slot], value.numpy()))
            g = theirs.param_groups[0 if i < SPLIT else 1]
            assert state[i]["step"] == g["k"], where
            assert state[i]["lr_max"] == g["lr_max"] and state[i]["weight_sum"] == g["weight_sum"], where
        for label, a, b in pairs:
            if exact:
                assert_same_bits(a, b, f"{where} {label}")
            else:
                np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{where} {label}")

    for t, row in enumerate(grads):
        for p, g in zip(tp, row):
            p.grad = torch.tensor(g.copy())  # schedulefree divides the grads in place
        theirs.step()
        ours.step(row)
        compare(f"step {t + 1}")
        if t + 1 in SWAP_AT:
            theirs.eval()
            ours.eval()
            compare(f"eval after step {t + 1}")
            theirs.train()
            ours.train()
            compare(f"train after step {t + 1}")
    assert [g["train_mode"] for g in ours.param_groups] == [g["train_mode"] for g in theirs.param_groups]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cfg", CASES)
@pytest.mark.parametrize("shapes", [SHAPES, [(100003,)]], ids=["mixed", "big"])
def test_native_equals_reference(target: str, dtype: Any, name: str, cfg: dict[str, Any], shapes: Any) -> None:
    """Bitwise on baseline after every step (every state array and counter); on FMA targets
    within a teacher-forced bound: 6 fused ops on y's chain (wd, lerp, y update, v, d twice)
    -> 2*6 + 1 ulp of the largest term."""
    params = make_params(shapes, dtype, 3)
    steps = 8 if len(shapes) == 1 else STEPS
    grads = make_grad_stream(shapes, dtype, steps, 4)
    pair = Pair(getattr(fusedopt, name), params, cfg)
    for t, row in enumerate(grads):
        old = pair.copy_b()
        pair.step(row, look=t < 3 or t == steps - 1, hand_out=t == steps // 2)
        if target == "baseline":
            pair.assert_bitwise(f"step {t + 1} ")
        else:
            pair.assert_within_ulp(13, old=old, where=f"step {t + 1} ")
            pair.resync()


def test_first_step_and_counters_by_hand() -> None:
    """Defaults, one parameter: k=0 -> lr_max = lr, weight = lr^2, ckp1 = 1: y = z - lr*g*(1 - ... )."""
    p = np.array([1.0, -2.0])
    opt = fusedopt.SGDScheduleFree([p], lr=0.5, momentum=0.9)
    opt.step([np.array([1.0, 1.0])])
    # y = lerp(y, z=y, 1) + g*0.5*(0.9*0 - 1) = y - 0.5 g; z = y0 - 0.5 g
    np.testing.assert_array_equal(p, [0.5, -2.5])
    st = opt.state[0]
    np.testing.assert_array_equal(st["z"], [0.5, -2.5])
    assert (st["step"], st["lr_max"], st["weight_sum"]) == (1, 0.5, 0.25)
    opt.eval()  # x = lerp(y, z, 1 - 1/0.9): y == z here
    np.testing.assert_array_equal(p, [0.5, -2.5])


def test_swap_is_one_lerp_per_group_and_skips_params_without_state() -> None:
    a, b = np.array([1.0, 2.0]), np.array([3.0])
    opt = fusedopt.AdamWScheduleFree([{"params": [a]}, {"params": [b], "betas": (0.5, 0.999)}], lr=0.1)
    opt.step([np.array([1.0, -1.0]), None])
    z = opt.state[0]["z"].copy()
    y = a.copy()
    opt.eval()
    assert [g["train_mode"] for g in opt.param_groups] == [False, False]
    np.testing.assert_array_equal(b, [3.0])  # no z: untouched, as schedulefree
    expect = fusedopt.reference._lerp(y, z, 1 - 1 / 0.9)
    np.testing.assert_allclose(a, expect, rtol=1e-15)
    opt.eval()  # already: a no-op
    np.testing.assert_allclose(a, expect, rtol=1e-15)
    opt.train()
    np.testing.assert_allclose(a, y, rtol=1e-14)


@pytest.mark.parametrize("master", [False, True])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_swap_of_sixteen_bit_parameters(baseline_target: str, dtype: str, master: bool) -> None:
    """A 16-bit parameter swaps with its float32 z: float32 lerp, rounded once (eval() used to
    refuse the dtype). With master weights the float32 copy, what the rule steps from, is left
    alone: steps after train() continue as if no swap had happened."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dt = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}[dtype]
    p = np.linspace(-1.0, 1.0, 40).astype(dt)
    opt = fusedopt.SGDScheduleFree([p], lr=0.1, master_weights=master)
    twin = fusedopt.SGDScheduleFree([p.copy()], lr=0.1, master_weights=master)
    g = np.linspace(0.5, -0.5, 40).astype(dt)
    for o in (opt, twin):
        o.step([g])
        o.step([g])
    y = p.copy()
    expect = [p.copy()]
    fusedopt.reference.blend(expect, [opt.state[0]["z"].copy()], 1 - 1 / 0.9, "lerp")
    opt.eval()
    np.testing.assert_array_equal(p.view(np.uint16), expect[0].view(np.uint16))
    opt.train()
    if master:
        opt.step([g])
        twin.step([g])
        np.testing.assert_array_equal(p.view(np.uint16), twin.params[0].view(np.uint16))
    else:  # y -> x -> y: two roundings; at most one spacing apart
        spacing = np.spacing(np.abs(y).astype(dt)).astype(np.float64)
        assert (np.abs(p.astype(np.float64) - y.astype(np.float64)) <= spacing).all()


def test_step_in_eval_mode_raises_and_changes_nothing() -> None:
    params = make_params(SHAPES, np.float32, 1)
    opt = fusedopt.AdamWScheduleFree(params, lr=1e-2)
    row = make_grad_stream(SHAPES, np.float32, 1, 2)[0]
    opt.step(row)
    opt.eval()
    before = snapshot(opt)
    with pytest.raises(RuntimeError, match="param group 0 is in eval mode.*call train"):
        opt.step(row)
    assert_snapshot_equal(snapshot(opt), before)


@pytest.mark.parametrize("name,cfg", CASES)
@pytest.mark.parametrize("how", ["state_dict", "pickle", "deepcopy"])
def test_resume_bitwise_with_mode(name: str, cfg: dict[str, Any], how: str) -> None:
    params = make_params(SHAPES, np.float64, 1)
    grads = make_grad_stream(SHAPES, np.float64, 12, 2)
    a = getattr(fusedopt, name)(groups([p.copy() for p in params], cfg["lr"]), **cfg)
    for row in grads[:6]:
        a.step(row)
    a.eval()  # schedulefree's advice: save in eval mode
    if how == "state_dict":
        b = getattr(fusedopt, name)(groups([p.copy() for p in params], cfg["lr"]), **cfg)
        b.load_state_dict(a.state_dict())
        for x, y in zip(b.params, a.params):
            x[...] = y
    else:
        b = pickle.loads(pickle.dumps(a)) if how == "pickle" else copy.deepcopy(a)
    assert [g["train_mode"] for g in b.param_groups] == [False, False]
    for o in (a, b):
        o.train()
        for row in grads[6:]:
            o.step(row)
        o.eval()
    assert_snapshot_equal(snapshot(b), snapshot(a), how)


def test_none_grad_keeps_its_parameters_counters() -> None:
    """The documented difference: per-parameter counters (schedulefree's advance per group)."""
    a, b = np.ones(2), np.ones(2)
    opt = fusedopt.SGDScheduleFree([a, b], lr=0.1)
    opt.step([np.ones(2), np.ones(2)])
    opt.step([np.ones(2), None])
    st = opt.state
    assert (st[0]["step"], st[1]["step"]) == (2, 1)
    assert st[1]["weight_sum"] == pytest.approx(0.01) and st[0]["weight_sum"] == pytest.approx(0.02)


@pytest.mark.parametrize("name,kwargs,exc,match", [
    ("SGDScheduleFree", {"momentum": 0.0}, ValueError, r"momentum: must be in \(0, 1\)"),
    ("SGDScheduleFree", {"momentum": 1.0}, ValueError, "momentum"),
    ("SGDScheduleFree", {"lr": -1.0}, ValueError, r"lr: must be >= 0"),
    ("SGDScheduleFree", {"warmup_steps": -1}, ValueError, "warmup_steps"),
    ("SGDScheduleFree", {"r": "x"}, TypeError, "r: expected a number"),
    ("SGDScheduleFree", {"weight_lr_power": None}, TypeError, "weight_lr_power"),
    ("AdamWScheduleFree", {"betas": (0.0, 0.999)}, ValueError, "beta1 must be in"),
    ("AdamWScheduleFree", {"betas": (0.9, 1.0)}, ValueError, r"betas\[1\]"),
    ("AdamWScheduleFree", {"eps": -1e-8}, ValueError, "eps"),
    ("AdamWScheduleFree", {"weight_decay": -0.1}, ValueError, "weight_decay"),
    ("AdamWScheduleFree", {"foreach": True}, TypeError, "unexpected keyword argument 'foreach'"),
])
def test_bad_hyperparameters(name: str, kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        getattr(fusedopt, name)([np.ones(3)], **kwargs)


@pytest.mark.parametrize("name", ["SGDScheduleFree", "AdamWScheduleFree"])
def test_bad_step_and_bad_group_edit_change_nothing(name: str) -> None:
    params = make_params(SHAPES, np.float32, 1)
    opt = getattr(fusedopt, name)(params, lr=1e-2)
    rows = make_grad_stream(SHAPES, np.float32, 2, 2)
    opt.step(rows[0])
    before = snapshot(opt)
    with pytest.raises(ValueError, match="grads"):
        opt.step(rows[1][:-1])
    opt.param_groups[0]["warmup_steps"] = -3
    with pytest.raises(ValueError, match=r"warmup_steps \(param group 0\)"):
        opt.step(rows[1])
    assert_snapshot_equal(snapshot(opt), before)
    opt.param_groups[0]["warmup_steps"] = 0
    opt.step(rows[1])


def test_callable_momentum_cannot_swap() -> None:
    opt = fusedopt.SGDScheduleFree([np.ones(2)], lr=0.1, momentum=lambda k: 0.9)
    opt.step([np.ones(2)])
    with pytest.raises(TypeError, match="momentum: train"):
        opt.eval()
    assert opt.param_groups[0]["train_mode"] is True
