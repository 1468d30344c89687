"""Checkpoint interop: fusedopt.interop.from_torch_state_dict / to_torch_state_dict.

A run switches framework at step 10 of 20 and must match an uninterrupted run,
parameters and every state entry after each remaining step, in both directions.
Without torch the golden trajectories stand in for torch: a torch-layout state
dict (position keys, float32 step) built from the golden step-10 snapshot is
loaded into fusedopt, which must then reproduce golden steps 11..20.
"""

from __future__ import annotations

import copy
import importlib.util
import sys

import fusedopt
import numpy as np
import pytest
from fusedopt import interop

from . import cases
from .conftest import compare_trajectory
from .test_optimizers_golden import _golden_case

HAVE_TORCH = importlib.util.find_spec("torch") is not None
SWITCH = 10  # switch frameworks after this many step() calls (of cases.N_STEPS)

# The config with the most state per optimizer, and its param-groups config.
_RICH = {
    "SGD": "nesterov",
    "Adagrad": "lr_decay",
    "RMSprop": "maximize centered weight_decay w momentum",
    "Adam": "amsgrad",
    "AdamW": "amsgrad maximize",
    "Adamax": "maximize weight_decay",
    "NAdam": "decoupled_weight_decay",
    "RAdam": "decoupled_weight_decay",
    "Adadelta": "maximize, weight_decay",
    "Rprop": "clamped both ways",
    "ASGD": "averaging",
    "Adafactor": "maximize",
}
INTEROP_CASES = [c for c in cases.OPT_CASES if c.desc in (_RICH[c.optimizer], "param groups")]
_PARAMS = [pytest.param(c, id=c.id) for c in INTEROP_CASES]


def live(test):
    """Mark a test that runs torch."""
    return pytest.mark.torch(pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")(test))


def _torch_layout_from_snapshot(case: cases.OptCase, snap: dict) -> dict:
    """A state dict as torch.optim writes it, from a (golden) snapshot: position keys,
    'step' as a float32 0-d value, hyperparameters with torch's group keys."""
    fresh, _ = cases.make_fusedopt_case(fusedopt, case, [np.zeros(s, case.dtype) for s in cases.SHAPES], "numpy")
    groups = interop.to_torch_state_dict(fresh)["param_groups"]
    state = {}
    for i, st in snap["state"].items():
        state[i] = {
            k: (np.float32(v) if k in cases.SCALAR_STATE else np.array(v)) for k, v in st.items()
        }
    return {"state": state, "param_groups": copy.deepcopy(groups)}


# Two ways in: the converter, or the optimizer's own load_state_dict, which recognises torch's
# layout (its implementation flags in the groups, tensors in the state) and converts it alike.
LOADERS = {
    "interop": interop.from_torch_state_dict,
    "load_state_dict": lambda opt, tsd: opt.load_state_dict(tsd),
}


@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
@pytest.mark.parametrize("case", _PARAMS)
def test_from_torch_layout_resumes_golden_trajectory(case, impl, load):
    _, grads, ref = _golden_case(case)
    tsd = _torch_layout_from_snapshot(case, ref[SWITCH])
    opt, params = cases.make_fusedopt_case(fusedopt, case, ref[SWITCH]["params"], impl.backend)
    load(opt, tsd)
    got = [cases.fusedopt_snapshot(opt, params)] + cases.fusedopt_steps(opt, params, grads[SWITCH:])
    label = f"{case.id} [golden state at step {SWITCH} -> fusedopt {impl.id}]"
    compare_trajectory(got, ref[SWITCH:], case.dtype, label, "interop", first_step=SWITCH)


@pytest.mark.parametrize("case", _PARAMS)
def test_to_torch_then_from_torch_is_lossless(case, monkeypatch):
    """The round trip through torch's layout gives back exactly the same state (NumPy
    values, as without torch installed).  Conversion only: the backend does not matter."""
    init, grads = case.stream()
    opt, _ = cases.make_fusedopt_case(fusedopt, case, init, "numpy")
    for row in grads[:SWITCH]:
        opt.step(row)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    tsd = interop.to_torch_state_dict(opt)
    for i, st in tsd["state"].items():
        assert isinstance(i, int)
        for name, v in st.items():
            assert isinstance(v, np.ndarray), (i, name, type(v))
            if name in cases.SCALAR_STATE:
                assert v.dtype == np.float32 and v.shape == (), (i, name, v.dtype, v.shape)
            else:
                assert v.dtype == np.dtype(case.dtype), (i, name, v.dtype)
    other, _ = cases.make_fusedopt_case(fusedopt, case, init, "numpy")
    interop.from_torch_state_dict(other, tsd)
    a, b = opt.state_dict(), other.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        assert a["state"][k].keys() == b["state"][k].keys()
        for name, v in a["state"][k].items():
            w = b["state"][k][name]
            assert type(v) is type(w), (k, name, type(v), type(w))
            np.testing.assert_array_equal(v, w)


def test_named_parameters_map_to_positions(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    rng = np.random.default_rng(0)
    named = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(3)}
    opt = fusedopt.Adam(named, lr=0.01)
    opt.step({"w": np.ones((3, 2)), "b": None})
    tsd = interop.to_torch_state_dict(opt)
    assert list(tsd["state"]) == [0]
    assert tsd["param_groups"][0]["params"] == [0, 1]
    assert tsd["param_groups"][0]["param_names"] == ["w", "b"]
    other = fusedopt.Adam({k: v.copy() for k, v in named.items()}, lr=0.5)
    interop.from_torch_state_dict(other, tsd)
    assert list(other.state) == ["w"]
    assert other.state["w"]["step"] == 1
    assert other.param_groups[0]["lr"] == 0.01
    np.testing.assert_array_equal(other.state["w"]["exp_avg"], opt.state["w"]["exp_avg"])


def test_mismatched_structure_is_refused():
    a = fusedopt.SGD([np.zeros(3), np.zeros(2)], lr=0.1, momentum=0.9)
    tsd = {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}
    with pytest.raises(ValueError, match="param"):
        interop.from_torch_state_dict(a, tsd)
    tsd = {"state": {0: {"momentum_buffer": np.zeros(4)}}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}
    with pytest.raises(ValueError, match="shape"):
        interop.from_torch_state_dict(a, tsd)


# --------------------------------------------------------------------------- live


@live
@pytest.mark.parametrize("load", LOADERS.values(), ids=LOADERS.keys())
@pytest.mark.parametrize("case", _PARAMS)
def test_switch_torch_to_fusedopt_at_step_10(case, impl, load):
    init, grads = case.stream()
    ref = cases.run_torch_case(case, init, grads)  # uninterrupted torch run
    t_opt, t_params = cases.make_torch_case(case, init)
    cases.torch_steps(case, t_opt, t_params, grads[:SWITCH])
    tsd = copy.deepcopy(t_opt.state_dict())  # torch's state_dict holds live tensors
    opt, params = cases.make_fusedopt_case(fusedopt, case, [p.detach().numpy() for p in t_params], impl.backend)
    load(opt, tsd)
    got = [cases.fusedopt_snapshot(opt, params)] + cases.fusedopt_steps(opt, params, grads[SWITCH:])
    label = f"{case.id} [torch -> fusedopt {impl.id} at step {SWITCH}]"
    compare_trajectory(got, ref[SWITCH:], case.dtype, label, "interop", first_step=SWITCH)


def _assert_bitwise_equal(a: list[dict], b: list[dict]) -> None:
    for r, (x, y) in enumerate(zip(a, b)):
        for p, q in zip(x["params"], y["params"]):
            np.testing.assert_array_equal(p, q, err_msg=f"after step {r}")
        assert x["state"].keys() == y["state"].keys()
        for i in x["state"]:
            for name, v in x["state"][i].items():
                np.testing.assert_array_equal(v, y["state"][i][name], err_msg=f"after step {r}: state[{i}][{name!r}]")


def _torch_resumed(case: cases.OptCase, init, grads) -> list[dict]:
    """torch's own checkpoint/resume at SWITCH: the reference for a run that continues in
    torch after loading a state dict.  It equals the uninterrupted run except that torch's
    load_state_dict casts NAdam's float32 mu_product to the parameter dtype (float64)."""
    opt, params = cases.make_torch_case(case, init)
    snaps = [cases._torch_snapshot(opt, params)] + cases.torch_steps(case, opt, params, grads[:SWITCH])
    sd = copy.deepcopy(opt.state_dict())
    opt2, params2 = cases.make_torch_case(case, [p.detach().numpy() for p in params])
    opt2.load_state_dict(sd)
    return snaps + cases.torch_steps(case, opt2, params2, grads[SWITCH:])


@live
@pytest.mark.parametrize("case", _PARAMS)
def test_switch_fusedopt_to_torch_at_step_10(case, impl):
    import torch

    init, grads = case.stream()
    ref = _torch_resumed(case, init, grads)
    if not (case.optimizer == "NAdam" and case.dtype == "float64"):
        _assert_bitwise_equal(ref, cases.run_torch_case(case, init, grads))
    opt, params = cases.make_fusedopt_case(fusedopt, case, init, impl.backend)
    cases.fusedopt_steps(opt, params, grads[:SWITCH])
    t_opt, t_params = cases.make_torch_case(case, params)
    tsd = interop.to_torch_state_dict(opt)
    for st in tsd["state"].values():
        if "step" in st:
            assert st["step"].dtype == torch.float32 and st["step"].shape == ()
    t_opt.load_state_dict(tsd)
    got = [cases._torch_snapshot(t_opt, t_params)] + cases.torch_steps(case, t_opt, t_params, grads[SWITCH:])
    label = f"{case.id} [fusedopt {impl.id} -> torch at step {SWITCH}]"
    compare_trajectory(got, ref[SWITCH:], case.dtype, label, "interop", first_step=SWITCH)


@live
@pytest.mark.parametrize("case", _PARAMS)
def test_to_torch_state_dict_looks_like_torchs_own(case):
    """Same state keys and names, same param-group keys and values (flags included) as
    torch's state_dict at the same point of the same run."""
    init, grads = case.stream()
    t_opt, t_params = cases.make_torch_case(case, init)
    cases.torch_steps(case, t_opt, t_params, grads[:SWITCH])
    opt, _ = cases.make_fusedopt_case(fusedopt, case, init, "numpy")
    for row in grads[:SWITCH]:
        opt.step(row)
    ours, theirs = interop.to_torch_state_dict(opt), t_opt.state_dict()
    assert ours["param_groups"] == theirs["param_groups"]
    assert ours["state"].keys() == theirs["state"].keys()
    for i, st in theirs["state"].items():
        assert ours["state"][i].keys() == st.keys(), i
        for name, v in st.items():
            w = ours["state"][i][name]
            assert type(w) is type(v) and w.dtype == v.dtype and w.shape == v.shape, (i, name, w, v)


# torch's fused SGD fails on a step where some gradients are None, so fused is Adam-only here.
_FLAG_CASES = [
    pytest.param(c, flag, id=f"{c.id}-{flag}")
    for c in INTEROP_CASES
    for flag in {"SGD": ("foreach",), "Adam": ("foreach", "fused")}.get(c.optimizer, ())
]


@live
@pytest.mark.parametrize(("case", "flag"), _FLAG_CASES)
def test_from_torch_drops_implementation_flags(case, flag):
    """A state dict from torch's foreach or fused implementation loads the same way; the
    run continues within tolerance of the uninterrupted for-loop run (torch's fused CPU
    kernels differ from its for-loop by an ulp or two)."""
    import torch

    init, grads = case.stream()
    ref = cases.run_torch_case(case, init, grads)
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    t_opt = getattr(torch.optim, case.optimizer)(cases._param_spec(case, params), **case.kwargs, **{flag: True})
    cases.torch_steps(case, t_opt, params, grads[:SWITCH])
    tsd = copy.deepcopy(t_opt.state_dict())
    assert all(g[flag] is True for g in tsd["param_groups"])
    opt, fparams = cases.make_fusedopt_case(fusedopt, case, [p.detach().numpy() for p in params], "native")
    interop.from_torch_state_dict(opt, tsd)
    assert all(flag not in g for g in opt.param_groups)
    got = [cases.fusedopt_snapshot(opt, fparams)] + cases.fusedopt_steps(opt, fparams, grads[SWITCH:])
    label = f"{case.id} [torch {flag} -> fusedopt at step {SWITCH}]"
    compare_trajectory(got, ref[SWITCH:], case.dtype, label, "interop", first_step=SWITCH)
