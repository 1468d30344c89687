"""Parameter averaging (fusedopt.swa_utils): AveragedModel with EMA, SWA and the default
average against torch 2.13's AveragedModel (live, 30 updates), against the NumPy reference,
n_averaged counting, state_dict / pickle, bad input; SWALR against torch's SWALR."""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import DTYPES, assert_same_bits, check_ulp_bound, make_params
from fusedopt import reference, swa_utils

SHAPES = [(3, 2), (17,), (), (1000,), (1,)]
UPDATES = 30


def walk(dtype: Any, steps: int = UPDATES, seed: int = 4) -> list[list[np.ndarray]]:
    """Model parameters at each update: a random walk from make_params."""
    rng = np.random.default_rng(seed)
    now = make_params(SHAPES, dtype, seed)
    out = []
    for _ in range(steps):
        now = [np.array(p + rng.uniform(-0.3, 0.3, size=p.shape), dtype=dtype) for p in now]
        out.append([p.copy() for p in now])
    return out


FNS = {
    "ema": (lambda: fusedopt.get_ema_multi_avg_fn(0.9), "get_ema_multi_avg_fn", (0.9,)),
    "ema-0.999": (lambda: fusedopt.get_ema_multi_avg_fn(0.999), "get_ema_multi_avg_fn", (0.999,)),
    "swa": (lambda: fusedopt.get_swa_multi_avg_fn(), "get_swa_multi_avg_fn", ()),
    "default": (lambda: None, None, ()),
}


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(FNS))
def test_matches_torch_averaged_model(target: str, dtype: Any, kind: str) -> None:
    """Bit for bit on FMA targets (torch's lerp is fused there) and for the default average
    (a division) everywhere; on baseline the lerp is rounded twice: within 3 ulp per update."""
    torch = pytest.importorskip("torch")
    swa = torch.optim.swa_utils
    make, tname, targs = FNS[kind]
    states = walk(dtype)
    model = torch.nn.ParameterList([torch.nn.Parameter(torch.tensor(p)) for p in states[0]])
    theirs = swa.AveragedModel(model, multi_avg_fn=getattr(swa, tname)(*targs) if tname else None)
    ours = fusedopt.AveragedModel([p.copy() for p in states[0]], multi_avg_fn=make())
    for t, now in enumerate(states):
        with torch.no_grad():
            for p, x in zip(model, now):
                p.copy_(torch.tensor(x))
        before = [p.detach().numpy().copy() for p in theirs.module]
        theirs.update_parameters(model)
        if target == "baseline" and kind != "default":
            for a, b in zip(ours.params, before):  # teacher forcing: the difference is this update's alone
                a[...] = b
        ours.update_parameters(now)
        assert ours.n_averaged == int(theirs.n_averaged) == t + 1
        for i, (a, p) in enumerate(zip(ours.params, theirs.module)):
            b = p.detach().numpy()
            if target == "baseline" and kind != "default":
                check_ulp_bound(a, b, np.maximum(np.abs(now[i]), np.abs(before[i])), 3, where=f"update {t + 1} array {i} ")
            else:
                assert_same_bits(a, b, f"update {t + 1} array {i}")


ml_dtypes = pytest.importorskip("ml_dtypes")


@pytest.mark.parametrize("dtype", [*DTYPES, ml_dtypes.bfloat16, np.float16])
@pytest.mark.parametrize("kind", list(FNS))
def test_native_equals_reference_on_baseline(baseline_target: str, dtype: Any, kind: str) -> None:
    states = walk(dtype)
    ours = fusedopt.AveragedModel([p.copy() for p in states[0]], multi_avg_fn=FNS[kind][0]())
    mine = [p.copy() for p in states[0]]
    for n, now in enumerate(states):
        ours.update_parameters(now)
        if n == 0:
            reference.blend(mine, now, 0.0, "copy")
        elif kind.startswith("ema"):
            reference.blend(mine, now, 1 - (0.9 if kind == "ema" else 0.999), "lerp")
        elif kind == "swa":
            reference.blend(mine, now, float(np.float32(1) / np.float32(n + 1)), "lerp")
        else:
            reference.blend(mine, now, n + 1, "div")
    for a, b in zip(ours.params, mine):
        assert_same_bits(a, b, kind)


def test_swa_is_the_mean(baseline_target: str) -> None:
    xs = [np.array([1.0, 2.0]), np.array([3.0, 6.0]), np.array([5.0, 10.0]), np.array([7.0, 2.0])]
    avg = fusedopt.AveragedModel([xs[0].copy()])
    for x in xs:
        avg.update_parameters([x])
    np.testing.assert_array_equal(avg.params[0], [4.0, 5.0])


def test_named_params_and_optimizer_source() -> None:
    params = {"W": np.ones((2, 3), np.float32), "b": np.zeros(3)}
    opt = fusedopt.SGD(params, lr=0.5)
    ema = fusedopt.AveragedModel(params, multi_avg_fn=fusedopt.get_ema_multi_avg_fn(0.5))
    assert set(ema.params) == {"W", "b"} and ema.params["W"] is not params["W"]
    opt.step({"W": np.ones((2, 3), np.float32), "b": np.ones(3)})
    ema.update_parameters(params)  # first: copy
    np.testing.assert_array_equal(ema.params["b"], [-0.5] * 3)
    opt.step({"W": np.ones((2, 3), np.float32), "b": np.ones(3)})
    ema.update_parameters(params)
    np.testing.assert_array_equal(ema.params["b"], [-0.75] * 3)
    by_opt = fusedopt.AveragedModel(opt)
    by_opt.update_parameters(opt)
    np.testing.assert_array_equal(by_opt.params[1], params["b"])


def test_custom_avg_fn_and_multi_avg_fn_are_called_like_torch() -> None:
    seen: list[int] = []

    def multi(avg: list[np.ndarray], cur: list[np.ndarray], n: int) -> None:
        seen.append(n)
        for a, c in zip(avg, cur):
            a[...] = np.maximum(a, c)

    m = fusedopt.AveragedModel([np.zeros(2)], multi_avg_fn=multi)
    for x in (np.array([1.0, -1.0]), np.array([0.0, 3.0]), np.array([2.0, 0.0])):
        m.update_parameters([x])
    assert seen == [1, 2]
    np.testing.assert_array_equal(m.params[0], [2.0, 3.0])
    s = fusedopt.AveragedModel([np.zeros(2)], avg_fn=swa_utils.get_swa_avg_fn())
    for x in (np.array([1.0, 2.0]), np.array([3.0, 4.0])):
        s.update_parameters([x])
    np.testing.assert_array_equal(s.params[0], [2.0, 3.0])
    e = fusedopt.AveragedModel([np.zeros(1)], avg_fn=swa_utils.get_ema_avg_fn(0.5))
    for x in (np.array([1.0]), np.array([3.0])):
        e.update_parameters([x])
    np.testing.assert_array_equal(e.params[0], [2.0])


@pytest.mark.parametrize("how", ["state_dict", "pickle", "deepcopy"])
def test_resume_bitwise(how: str) -> None:
    states = walk(np.float32)
    a = fusedopt.AveragedModel([p.copy() for p in states[0]], multi_avg_fn=fusedopt.get_ema_multi_avg_fn(0.95))
    for now in states[:10]:
        a.update_parameters(now)
    if how == "state_dict":
        b = fusedopt.AveragedModel([p.copy() for p in states[0]], multi_avg_fn=fusedopt.get_ema_multi_avg_fn(0.95))
        sd = a.state_dict()
        b.load_state_dict(sd)
        sd["params"][0][...] = 9  # a copy
        assert not (a.params[0] == 9).any()
    else:
        b = pickle.loads(pickle.dumps(a)) if how == "pickle" else copy.deepcopy(a)
    assert b.n_averaged == 10
    for now in states[10:]:
        a.update_parameters(now)
        b.update_parameters(now)
    for x, y in zip(a.params, b.params):
        assert_same_bits(x, y, how)


BAD_UPDATES = [
    (lambda ps: ps[:-1], ValueError, "params: expected 5 arrays"),
    (lambda ps: [*ps[:-1], ps[-1].astype(np.float64)], TypeError, r"params\[4\]: dtype float64 does not match"),
    (lambda ps: [*ps[:-1], np.zeros(2, np.float32)], ValueError, r"params\[4\]: shape \(2,\) does not match"),
    (lambda ps: [*ps[:-1], [1.0]], TypeError, r"params\[4\]: expected a numpy.ndarray"),
    (lambda ps: "abc", TypeError, "params: expected a list or dict"),
]


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("make,exc,match", BAD_UPDATES)
def test_bad_update_changes_nothing(first: bool, make: Any, exc: type, match: str) -> None:
    states = walk(np.float32)
    m = fusedopt.AveragedModel([p.copy() for p in states[0]])
    if not first:
        m.update_parameters(states[0])
    before = [a.copy() for a in m.params]
    n = m.n_averaged
    with pytest.raises(exc, match=match):
        m.update_parameters(make(states[1]))
    assert m.n_averaged == n
    for a, b in zip(m.params, before):
        assert_same_bits(a, b, "unchanged")


@pytest.mark.parametrize("mutate,exc,match", [
    (lambda sd: sd.pop("n_averaged"), ValueError, "expected 'n_averaged' and 'params'"),
    (lambda sd: sd.__setitem__("n_averaged", -1), ValueError, "'n_averaged' must be a whole number"),
    (lambda sd: sd.__setitem__("n_averaged", 2.5), ValueError, "'n_averaged' must be a whole number"),
    (lambda sd: sd["params"].pop(4), ValueError, "'params' has keys"),
    (lambda sd: sd["params"].__setitem__(4, np.zeros(3)), ValueError, r"params\[4\].*shape"),
])
def test_bad_state_dict_changes_nothing(mutate: Any, exc: type, match: str) -> None:
    states = walk(np.float32)
    m = fusedopt.AveragedModel([p.copy() for p in states[0]])
    for now in states[:3]:
        m.update_parameters(now)
    sd = m.state_dict()
    mutate(sd)
    before = [a.copy() for a in m.params]
    with pytest.raises(exc, match=match):
        m.load_state_dict(sd)
    assert m.n_averaged == 3
    for a, b in zip(m.params, before):
        assert_same_bits(a, b, "unchanged")


def test_bad_construction() -> None:
    with pytest.raises(ValueError, match="Only one of avg_fn and multi_avg_fn"):
        fusedopt.AveragedModel([np.zeros(2)], avg_fn=swa_utils.get_swa_avg_fn(), multi_avg_fn=fusedopt.get_swa_multi_avg_fn())
    with pytest.raises(TypeError, match="multi_avg_fn: expected a callable"):
        fusedopt.AveragedModel([np.zeros(2)], multi_avg_fn=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"params\[0\]: dtype int64"):
        fusedopt.AveragedModel([np.zeros(2, np.int64)])
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="Invalid decay value"):
            fusedopt.get_ema_multi_avg_fn(bad)
    with pytest.raises(TypeError, match="decay: expected a number"):
        fusedopt.get_ema_multi_avg_fn("0.9")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# SWALR
# ---------------------------------------------------------------------------------------------

SWALR_CASES = [
    dict(swa_lr=0.05),
    dict(swa_lr=0.05, anneal_epochs=5, anneal_strategy="linear"),
    dict(swa_lr=[0.02, 0.3], anneal_epochs=7, anneal_strategy="cos"),
    dict(swa_lr=0.01, anneal_epochs=0),
    dict(swa_lr=0.01, anneal_epochs=1, anneal_strategy="linear"),
]


@pytest.mark.torch
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kwargs", SWALR_CASES, ids=lambda k: "-".join(f"{a}{b}" for a, b in k.items()))
@pytest.mark.parametrize("lead", [0, 6])
def test_swalr_matches_torch(kwargs: dict[str, Any], lead: int) -> None:
    """30 steps, two groups with different lrs, optionally after `lead` steps of a cosine
    schedule (SWALR starts from where that left the lr); then a state_dict round trip."""
    torch = pytest.importorskip("torch")
    t_opt = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": 0.1}, {"params": [torch.zeros(1)], "lr": 0.7}], lr=0.1)
    o_opt = fusedopt.SGD([{"params": [np.zeros(1)], "lr": 0.1}, {"params": [np.zeros(1)], "lr": 0.7}], lr=0.1)
    if lead:
        tc = torch.optim.lr_scheduler.CosineAnnealingLR(t_opt, T_max=10)
        oc = fusedopt.schedules.CosineAnnealingLR(o_opt, T_max=10)
        for _ in range(lead):
            tc.step()
            oc.step()
    ts = torch.optim.swa_utils.SWALR(t_opt, **kwargs)
    os_ = fusedopt.schedules.SWALR(o_opt, **kwargs)

    def lrs(o: Any) -> list[float]:
        return [float(g["lr"]) for g in o.param_groups]

    for i in range(30):
        assert lrs(o_opt) == pytest.approx(lrs(t_opt), abs=1e-12, rel=0), f"call {i}"
        assert os_.get_last_lr() == pytest.approx(ts.get_last_lr(), abs=1e-12, rel=0)
        if i == 12:  # resume from a state_dict, into a new scheduler on the same groups
            sd = os_.state_dict()
            assert sorted(sd) == sorted(ts.state_dict())
            os_ = fusedopt.schedules.SWALR(o_opt, **kwargs)
            os_.load_state_dict(sd)
            os_.load_state_dict(ts.state_dict())  # a torch SWALR's state loads too
        ts.step()
        os_.step()
    assert [g["swa_lr"] for g in o_opt.param_groups] == [g["swa_lr"] for g in t_opt.param_groups]


def test_swalr_drives_a_wrapped_optimizer_and_is_exported() -> None:
    la = fusedopt.Lookahead(fusedopt.SGD([np.zeros(2)], lr=1.0))
    s = fusedopt.schedules.SWALR(la, swa_lr=0.5, anneal_epochs=2, anneal_strategy="linear")
    s.step()
    s.step()
    assert la.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    assert fusedopt.swa_utils.SWALR is fusedopt.schedules.SWALR
    assert issubclass(fusedopt.schedules.SWALR, fusedopt.schedules.LRScheduler)


@pytest.mark.parametrize("kwargs,match", [
    (dict(swa_lr="x"), "swa_lr must be a finite number"),
    (dict(swa_lr=[0.1, 0.2]), r"swa_lr must have one value per param group \(1\)"),
    (dict(swa_lr=0.1, anneal_epochs=-1), "anneal_epochs must be an integer >= 0"),
    (dict(swa_lr=0.1, anneal_epochs=2.0), "anneal_epochs must be an integer >= 0"),
    (dict(swa_lr=0.1, anneal_strategy="exp"), "anneal_strategy must be one of"),
])
def test_swalr_bad_arguments_change_nothing(kwargs: dict[str, Any], match: str) -> None:
    opt = fusedopt.SGD([np.zeros(2)], lr=0.3)
    with pytest.raises(ValueError, match=match):
        fusedopt.schedules.SWALR(opt, **kwargs)
    assert set(opt.param_groups[0]) == {"params", "lr", "momentum", "dampening", "weight_decay", "nesterov",
                                        "maximize", "formulation"} or "swa_lr" not in opt.param_groups[0]
