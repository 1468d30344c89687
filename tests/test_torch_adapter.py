"""fusedopt.torch against torch.optim 2.13: small models trained with real autograd gradients.

Each parity case trains two copies of a model (three Linear layers, seeded), one with
torch.optim.<Name>, one with fusedopt.torch.<Name>, and compares every parameter and every
state entry after every step with the torch-parity suite's tolerances (tests/parity/conftest.py
says why they are not bitwise: torch's CPU sqrt is not correctly rounded, ~16% of float32
results one ulp off). The models feed back each difference into the next gradients, so what
these tests bound is the whole training run, not one step. Where no sqrt is involved (SGD,
Adamax, Rprop, ASGD) and both sides fuse the same multiply-adds (fusedopt's FMA targets, torch's
AVX2/AVX512 kernels), the runs are bit for bit equal, and that is asserted. LAMB and LARS
(pytorch_optimizer) and Schedule-Free (schedulefree, with its eval()/train() swap) are checked
the same way against their reference packages, which are torch optimizers too.

Besides: the adapter against fusedopt's NumPy optimizers fed the very gradients the adapter
saw (bitwise: the same engine, so any difference is the adapter's plumbing), None gradients,
``p.data`` replaced, parameters added to a group, torch lr schedulers, state_dict both ways,
pickling, and the errors.
"""

from __future__ import annotations

import copy
import io
from typing import Any
import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fusedopt  # noqa: E402
import fusedopt.torch as ft  # noqa: E402
from conftest import RICH_CONFIGS, SUPPORTED_TARGETS, using_target  # noqa: E402
from parity.cases import _torch_snapshot  # noqa: E402
from parity.conftest import compare_trajectory  # noqa: E402

pytestmark = pytest.mark.torch

NAMES = ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adadelta", "Rprop", "ASGD", "Lion",
         "Adafactor")
NAMES += ("Lamb", "LARS", "SGDScheduleFree", "AdamWScheduleFree")
TORCH_NAMES = tuple(n for n in NAMES if hasattr(torch.optim, n))  # not Lion, Lamb, LARS, Schedule-Free
STEPS = 25
DTYPES = (torch.float32, torch.float64)
# No sqrt on the path: bitwise equal to torch where both fuse the same multiply-adds.
BITWISE_WITH_TORCH = ("SGD", "Adamax", "Rprop", "ASGD")
TORCH_FUSES = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
# Every option on (tests/conftest.py), but RMSprop's momentum at 0.5: its buffer sums gradients
# normalised to ~1, so at 0.9 it reaches ~10 in these models, where elements passing through
# zero leave 1-2 float32 ulp of that scale (1.9e-6) beyond the parity atol (1e-6, ~8 ulp of 1).
# Teacher-forced (each step from torch's state), square_avg and grad_avg match torch bit for bit
# on the FMA targets and momentum_buffer differs in ~14% of elements: torch's CPU sqrt, ~16% of
# float32 results one ulp off. The parity suite covers momentum 0.9 on its data.
CONFIGS = {**RICH_CONFIGS, "RMSprop": {**RICH_CONFIGS["RMSprop"], "momentum": 0.5}}
# Warmup, r, weight_lr_power and weight decay all in play (tests/test_schedule_free.py's configurations).
CONFIGS["SGDScheduleFree"] = {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1, "warmup_steps": 5, "r": 0.5}
CONFIGS["AdamWScheduleFree"] = {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1, "warmup_steps": 5,
                                "eps": 1e-6, "weight_lr_power": 1.0}


def make_model(dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).to(dtype)


def batches(dtype: torch.dtype, steps: int = STEPS, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(12, 6, generator=g, dtype=dtype), torch.randn(12, 3, generator=g, dtype=dtype)) for _ in range(steps)]


def backward(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    return loss


def train(model, opt, data, before_step=None, snap=True, grads=None, record=None) -> list[dict]:
    """zero_grad, backward, step per batch; a snapshot (params, state) after construction and
    after each step (or only at the end). `before_step(t, model)` may edit gradients or
    parameters. `grads`: per step, the gradients to use instead of this model's own (torch's,
    as `record` collected them), so that both sides of a comparison see the same gradients."""
    params = list(model.parameters())
    snaps = [_torch_snapshot(opt, params)] if snap else []
    for t, batch in enumerate(data):
        opt.zero_grad()
        if grads is None:
            backward(model, batch)
        else:
            for p, g in zip(params, grads[t]):
                p.grad = None if g is None else g.clone()
        if before_step is not None:
            before_step(t, model)
        if record is not None:
            record.append([None if p.grad is None else p.grad.clone() for p in params])
        opt.step()
        if snap:
            snaps.append(_torch_snapshot(opt, params))
    if not snap:
        snaps.append(_torch_snapshot(opt, params))
    return snaps


def versus_torch(name, kwargs, data, dtype=torch.float32, before_step=None, snap=True):
    """(fusedopt.torch's snapshots, torch.optim's): torch trains on its model's own gradients,
    fusedopt.torch on a copy of the model with torch's gradients (real ones, and the same, so a
    difference is the optimizer's: fed its own, the models would amplify each rounding
    difference into the next gradients)."""
    record: list = []
    a = make_model(dtype)
    ref = train(a, getattr(torch.optim, name)(a.parameters(), **kwargs), data, before_step, snap, record=record)
    b = make_model(dtype)
    got = train(b, getattr(ft, name)(b.parameters(), **kwargs), data, before_step, snap, grads=record)
    return got, ref


def assert_bitwise(got: list[dict], ref: list[dict], label: str) -> None:
    for r, (g, f) in enumerate(zip(got, ref)):
        for i, (a, b) in enumerate(zip(g["params"], f["params"])):
            assert a.tobytes() == b.tobytes(), f"{label}: param {i} differs after step {r}"
        assert g["state"].keys() == f["state"].keys(), f"{label}: after step {r}"
        for i in f["state"]:
            for name, v in f["state"][i].items():
                w = g["state"][i][name]
                same = np.asarray(w).tobytes() == np.asarray(v).tobytes() if isinstance(v, np.ndarray) else w == v
                assert same, f"{label}: state[{i}][{name!r}] differs after step {r}"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).split(".")[1]


@pytest.mark.parametrize("target", SUPPORTED_TARGETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_name)
@pytest.mark.parametrize("name", TORCH_NAMES)
def test_trains_like_torch(name, dtype, target):
    with using_target(target):
        got, ref = versus_torch(name, CONFIGS[name], batches(dtype), dtype)
    label = f"{name} {_dtype_name(dtype)} [{target}]"
    compare_trajectory(got, ref, _dtype_name(dtype), label, suite="torch-adapter")
    if name in BITWISE_WITH_TORCH and target != "baseline" and TORCH_FUSES:
        assert_bitwise(got, ref, label)


@pytest.mark.skipif(not TORCH_FUSES, reason="torch's kernels fuse multiply-adds on AVX2/AVX512 only")
@pytest.mark.parametrize("target", [t for t in SUPPORTED_TARGETS if t != "baseline"])
@pytest.mark.parametrize("name", BITWISE_WITH_TORCH)
def test_trains_bit_for_bit_like_torch_on_its_own_gradients(name, target):
    runs = []
    for opt_cls in (getattr(torch.optim, name), getattr(ft, name)):
        model = make_model(torch.float32)
        with using_target(target):
            runs.append(train(model, opt_cls(model.parameters(), **CONFIGS[name]), batches(torch.float32)))
    assert_bitwise(runs[1], runs[0], f"{name} [{target}]")


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_name)
@pytest.mark.parametrize("name", NAMES)
def test_steps_exactly_as_fusedopt_on_numpy(name, dtype):
    """The adapter's plumbing adds nothing: fusedopt's own optimizer on NumPy copies, given the
    gradients the adapter saw (None where torch had none), lands on the same bits."""
    model = make_model(dtype)
    opt = getattr(ft, name)(model.parameters(), **CONFIGS[name])
    arrays = [p.detach().numpy().copy() for p in model.parameters()]
    twin = getattr(fusedopt, name)(arrays, **CONFIGS[name])

    def freeze_some(t, m):  # some gradients None on some steps
        for i, p in enumerate(m.parameters()):
            if (t + i) % 4 == 0:
                p.grad = None

    def step_twin(t, m):
        freeze_some(t, m)
        twin.step([None if p.grad is None else p.grad.numpy().copy() for p in m.parameters()])

    train(model, opt, batches(dtype), before_step=step_twin, snap=False)
    for i, (p, a) in enumerate(zip(model.parameters(), arrays)):
        assert p.detach().numpy().tobytes() == a.tobytes(), f"param {i}"
    ours = opt.state_dict()["state"]
    theirs = fusedopt.interop.to_torch_state_dict(twin)["state"]
    assert ours.keys() == theirs.keys()
    for i in theirs:
        for k, v in theirs[i].items():
            assert torch.equal(ours[i][k], v), (i, k)


# ---- optimizers torch.optim lacks, against their reference packages (torch optimizers too) ----

# (package, per-step diagnostics it keeps in state, which are not optimizer state here)
PACKAGES = {"Lamb": ("pytorch_optimizer", ("weight_norm", "adam_norm", "trust_ratio")),
            "LARS": ("pytorch_optimizer", ()),
            "SGDScheduleFree": ("schedulefree", ()),
            "AdamWScheduleFree": ("schedulefree", ())}
COUNTERS = ("step", "lr_max", "weight_sum")  # per parameter here, per group in both packages
SWAPS = (8, 17)  # Schedule-Free: eval() then train() after these steps


def _arrays_and_counters(opt, params: list, skip: tuple[str, ...]) -> tuple[dict, dict]:
    """(snapshot of the parameters and state arrays, counters per parameter with state):
    fusedopt.torch's counters from its state, the packages' from each parameter's group."""
    snap: dict = {"params": [p.detach().clone().numpy() for p in params], "state": {}}
    counters: dict = {}
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    for i, p in enumerate(params):
        st = opt.state.get(p)
        if not st:
            continue
        snap["state"][i] = {k: v.detach().clone().numpy() for k, v in st.items() if k not in COUNTERS + skip}
        g = group_of[id(p)]
        if isinstance(opt, ft.Optimizer):
            counters[i] = tuple(st[k].item() for k in COUNTERS if k in st)
        else:
            counters[i] = tuple(g[k] for k in ("k", "lr_max", "weight_sum", "step") if k in g)
    return snap, counters


@pytest.mark.parametrize("target", SUPPORTED_TARGETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_name)
@pytest.mark.parametrize("name", list(PACKAGES))
def test_trains_like_the_reference_package(name, dtype, target):
    """Lamb and LARS against pytorch_optimizer's, Schedule-Free against schedulefree's (with
    eval()/train() swaps mid-run, compared after each), on torch's gradients, every parameter
    and state array after every step at the parity tolerances, the counters exactly.
    Schedule-Free SGD is bit for bit where both sides fuse (docs/wrappers.md)."""
    package, skip = PACKAGES[name]
    ref_cls = getattr(pytest.importorskip(package), name)
    kwargs = CONFIGS[name]
    runs: list = []
    record: list = []
    for opt_cls in (ref_cls, getattr(ft, name)):
        model = make_model(dtype)
        params = list(model.parameters())
        opt = opt_cls(model.parameters(), **kwargs)
        if "ScheduleFree" in name:
            opt.train()  # schedulefree starts in eval mode; fusedopt's in train mode (a no-op)
        snaps, counters = [], []
        with using_target(target):
            for t, batch in enumerate(batches(dtype)):
                opt.zero_grad()
                if runs:
                    for p, g in zip(params, record[t]):
                        p.grad = g.clone()
                else:
                    backward(model, batch)
                    record.append([p.grad.clone() for p in params])
                opt.step()
                # snapshots after the step, then (at SWAPS) after eval() and after train(): a
                # failure message's "after step r" counts snapshots
                for swap in (None,) + ((opt.eval, opt.train) if t + 1 in SWAPS and "ScheduleFree" in name else ()):
                    if swap is not None:
                        swap()
                    snap, count = _arrays_and_counters(opt, params, skip)
                    snaps.append(snap)
                    counters.append(count)
        if "ScheduleFree" in name:
            assert [g["train_mode"] for g in opt.param_groups] == [True]
        runs.append((snaps, counters))
    (ref, ref_counts), (got, got_counts) = runs
    label = f"{name} {_dtype_name(dtype)} [{target}]"
    if not getattr(fusedopt, name).has_step:  # LARS keeps no count (pytorch_optimizer's group has one)
        ref_counts = [{i: () for i in c} for c in ref_counts]
    assert got_counts == ref_counts, label
    compare_trajectory(got, ref, _dtype_name(dtype), label, suite=package, first_step=1)
    if name == "SGDScheduleFree" and target != "baseline" and TORCH_FUSES:
        assert_bitwise(got, ref, label)


@pytest.mark.parametrize("name", ["SGDScheduleFree", "AdamWScheduleFree"])
def test_schedule_free_saved_in_eval_mode_resumes_bitwise(name):
    """schedulefree's advice: eval() before saving. The state_dict (torch.save-able with
    weights_only; lr_max and weight_sum as float64 0-d tensors, their bits kept) and the
    eval-mode parameters load into a fresh optimizer, which continues after train() exactly
    as the original does."""
    data = batches(torch.float64)
    a = make_model(torch.float64)
    oa = getattr(ft, name)(a.parameters(), **CONFIGS[name])
    train(a, oa, data[:SWITCH], snap=False)
    oa.eval()
    assert oa.state[next(a.parameters())]["lr_max"].dtype == torch.float64
    buffer = io.BytesIO()
    torch.save(oa.state_dict(), buffer)
    buffer.seek(0)
    sd = torch.load(buffer, weights_only=True)
    assert [g["train_mode"] for g in sd["param_groups"]] == [False]
    b = copy.deepcopy(a)
    ob = getattr(ft, name)(b.parameters())
    ob.load_state_dict(sd)
    assert ob.param_groups[0]["train_mode"] is False
    for opt in (oa, ob):
        opt.train()
    assert_bitwise(_continue(b, ob, data[SWITCH:]), _continue(a, oa, data[SWITCH:]), name)


def test_schedule_free_modes_follow_the_torch_groups():
    """A step in eval mode raises and changes nothing; a swap whose weight is not a number is
    refused naming it, with nothing changed; train_mode lives in torch's param_groups."""
    model = make_model(torch.float32)
    opt = ft.SGDScheduleFree(model.parameters(), lr=0.1)
    train(model, opt, batches(torch.float32, 2), snap=False)
    opt.eval()
    assert [g["train_mode"] for g in opt.param_groups] == [False]
    before = [p.detach().clone() for p in model.parameters()]
    state_before = copy.deepcopy(opt.state_dict())
    backward(model, batches(torch.float32, 1)[0])
    with pytest.raises(RuntimeError, match="eval mode"):
        opt.step()
    opt.eval()  # already in eval mode: nothing moves
    opt.param_groups[0]["momentum"] = lambda t: 0.9
    with pytest.raises(TypeError, match="momentum"):
        opt.train()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    after = opt.state_dict()
    assert after["param_groups"][0]["train_mode"] is False
    assert all(torch.equal(after["state"][0][k], v) for k, v in state_before["state"][0].items())
    opt.param_groups[0]["momentum"] = 0.9
    opt.train()
    opt.step()
    assert opt.state[next(model.parameters())]["step"] == 3


# ---- Muon: 2-D parameters, bfloat16 Newton-Schulz --------------------------------------------

MUON_CONFIGS = {"default": {}, "rich": {"lr": 0.02, "weight_decay": 0.05, "momentum": 0.9, "nesterov": False,
                                        "adjust_lr_fn": "match_rms_adamw", "ns_steps": 4}}


def make_matrix_model(dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """make_model without biases: Muon takes 2-D parameters only."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16, bias=False), torch.nn.Tanh(), torch.nn.Linear(16, 8, bias=False),
                               torch.nn.Tanh(), torch.nn.Linear(8, 3, bias=False)).to(dtype)


def _muon_step_bound(kwargs: dict, shape: tuple[int, ...], dtype: torch.dtype) -> float:
    """How far a parameter may move from torch's per step with a gradient (parity/muon_cases.py):
    two bfloat16 ulps of a unit update times the adjusted lr, plus one ulp of the parameter."""
    from fusedopt.optim.muon import adjusted_lr
    from parity.muon_cases import NS_STEP_ERROR

    ulp = 4 * float(np.finfo(_dtype_name(dtype)).eps)
    return NS_STEP_ERROR["bfloat16"] * adjusted_lr(kwargs.get("lr", 1e-3), kwargs.get("adjust_lr_fn"), shape) + ulp


def _muon_runs(kwargs: dict, dtype: torch.dtype, freeze: Any = None) -> tuple[list, list, list]:
    """(fusedopt.torch's snapshots, torch's, the gradients seen) over STEPS steps, fusedopt.torch on
    torch's gradients (see versus_torch)."""
    record: list = []
    a = make_matrix_model(dtype)
    ref = train(a, torch.optim.Muon(a.parameters(), **kwargs), batches(dtype), freeze, record=record)
    b = make_matrix_model(dtype)
    got = train(b, ft.Muon(b.parameters(), **kwargs), batches(dtype), freeze, grads=record)
    return got, ref, record


@pytest.mark.skipif(not TORCH_FUSES, reason="torch's lerp fuses on AVX2/AVX512 only, as the FMA targets do")
@pytest.mark.parametrize("target", [t for t in SUPPORTED_TARGETS if t != "baseline"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_name)
@pytest.mark.parametrize("config", list(MUON_CONFIGS))
def test_muon_trains_like_torch(config, dtype, target):
    """The momentum buffers bit for bit after every step; the parameters within what bfloat16
    Newton-Schulz allows (tests/parity/muon_cases.py: two bfloat16 ulps of a unit update times
    the adjusted lr, plus one ulp of the parameter, per step with a gradient); None gradients
    (a frozen layer for three steps, a step with none) skipped as torch does."""
    def freeze(t, m):
        params = list(m.parameters())
        if t < 3:
            params[1].grad = None
        if t == 7:
            for p in params:
                p.grad = None

    kwargs = MUON_CONFIGS[config]
    with using_target(target):
        got, ref, record = _muon_runs(kwargs, dtype, freeze)
    shapes = [tuple(p.shape) for p in make_matrix_model(dtype).parameters()]
    bounds = [0.0] * len(shapes)
    for r, (g, f) in enumerate(zip(got, ref)):
        if r:
            for i, shape in enumerate(shapes):
                if record[r - 1][i] is not None:
                    bounds[i] += _muon_step_bound(kwargs, shape, dtype)
        for i, (a, b) in enumerate(zip(g["params"], f["params"])):
            assert a.dtype == b.dtype and float(np.max(np.abs(a.astype(np.float64) - b))) <= bounds[i], f"step {r} param {i}"
        assert g["state"].keys() == f["state"].keys(), f"step {r}"
        for i in f["state"]:
            assert g["state"][i]["momentum_buffer"].tobytes() == f["state"][i]["momentum_buffer"].tobytes(), f"step {r} buffer {i}"


@pytest.mark.skipif(not TORCH_FUSES, reason="torch's lerp and add_ fuse on AVX2/AVX512 only, as the FMA targets do")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_muon_on_16bit_tensors_trains_like_torch(dtype):
    """bfloat16 and float16 parameters through the adapter (docs/muon.md, "16-bit parameters"):
    the momentum buffers bit for bit after every step, the parameters within the bfloat16
    Newton-Schulz bound plus one rounding of the parameter per step."""
    from fusedopt.optim.muon import adjusted_lr
    from parity.muon_cases import NS_STEP_ERROR

    a, b = make_matrix_model(dtype), make_matrix_model(dtype)
    ref, got = torch.optim.Muon(a.parameters(), lr=0.02), ft.Muon(b.parameters(), lr=0.02)
    bounds = [0.0] * 3
    with using_target(SUPPORTED_TARGETS[-1]):
        for t, batch in enumerate(batches(dtype, 12)):
            ref.zero_grad()
            backward(a, batch)  # torch's gradients for both
            for p, q in zip(b.parameters(), a.parameters()):
                p.grad = q.grad.clone()
            ref.step()
            got.step()
            for i, (p, q) in enumerate(zip(b.parameters(), a.parameters())):
                bounds[i] += NS_STEP_ERROR["bfloat16"] * adjusted_lr(0.02, None, tuple(p.shape)) + 4 * torch.finfo(dtype).eps
                assert p.dtype == dtype and float((p.detach().float() - q.detach().float()).abs().max()) <= bounds[i], f"step {t} param {i}"
                assert torch.equal(got.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"]), f"step {t} buffer {i}"


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_name)
def test_muon_steps_exactly_as_fusedopt_on_numpy(dtype):
    model = make_matrix_model(dtype)
    kwargs = MUON_CONFIGS["rich"]
    opt = ft.Muon(model.parameters(), **kwargs)
    arrays = [p.detach().numpy().copy() for p in model.parameters()]
    twin = fusedopt.Muon(arrays, **kwargs)
    train(model, opt, batches(dtype), snap=False,
          before_step=lambda t, m: twin.step([p.grad.numpy().copy() for p in m.parameters()]))
    for i, (p, a) in enumerate(zip(model.parameters(), arrays)):
        assert p.detach().numpy().tobytes() == a.tobytes(), f"param {i}"
    for i, st in twin.state.items():
        assert opt.state_dict()["state"][i]["momentum_buffer"].numpy().tobytes() == st["momentum_buffer"].tobytes()


@pytest.mark.parametrize("direction", ["to-torch", "from-torch"])
def test_muon_state_dict_moves_between_torch_and_fusedopt(direction):
    """torch's layout exactly (its group keys; fusedopt's ns_dtype stays the loader's own): a run
    saved by one continues in the other as in the saver."""
    src, dst = (ft.Muon, torch.optim.Muon) if direction == "to-torch" else (torch.optim.Muon, ft.Muon)
    kwargs = MUON_CONFIGS["rich"]
    data = batches(torch.float64)
    a = make_matrix_model(torch.float64)
    oa = src(a.parameters(), **kwargs)
    train(a, oa, data[:SWITCH], snap=False)
    sd = oa.state_dict()
    assert set(sd["param_groups"][0]) == set(torch.optim.Muon(a.parameters()).state_dict()["param_groups"][0])
    b = copy.deepcopy(a)
    ob = dst(b.parameters())
    ob.load_state_dict(copy.deepcopy(sd))
    assert_bitwise([_torch_snapshot(ob, list(b.parameters()))], [_torch_snapshot(oa, list(a.parameters()))], direction)
    assert {k: v for k, v in ob.param_groups[0].items() if k in kwargs} == kwargs
    record: list = []
    ref = train(a, oa, data[SWITCH:], record=record)[1:]
    got = train(b, ob, data[SWITCH:], grads=record)[1:]
    for r, (g, f) in enumerate(zip(got, ref), start=1):  # as test_muon_trains_like_torch bounds them
        for x, y in zip(g["params"], f["params"]):
            assert np.max(np.abs(x - y)) <= r * _muon_step_bound(kwargs, x.shape, torch.float64), f"step {SWITCH + r}"


def test_muon_pickled_and_reloaded_continue_bitwise():
    data = batches(torch.float32)
    model = make_matrix_model(torch.float32)
    opt = ft.Muon(model.parameters(), **MUON_CONFIGS["rich"])
    train(model, opt, data[:SWITCH], snap=False)
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    model3 = copy.deepcopy(model)
    opt3 = ft.Muon(model3.parameters())
    opt3.load_state_dict(opt.state_dict())
    want = _continue(model, opt, data[SWITCH:])
    assert_bitwise(_continue(model2, opt2, data[SWITCH:]), want, "pickled")
    assert_bitwise(_continue(model3, opt3, data[SWITCH:]), want, "reloaded")


def test_muon_refuses_what_torch_refuses():
    with pytest.raises(ValueError, match="2D parameters"):
        ft.Muon(make_model(torch.float32).parameters())
    with pytest.raises(ValueError, match="lr"):
        ft.Muon(make_matrix_model(torch.float32).parameters(), lr=-1.0)
    model = make_matrix_model(torch.float32)
    opt = ft.Muon(model.parameters())
    opt.param_groups[0]["ns_steps"] = 100
    backward(model, batches(torch.float32, 1)[0])
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="ns_steps"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before)) and not opt.state


# ---- what a step must notice ----------------------------------------------------------------


def _both(name: str, dtype=torch.float32, **kwargs):
    """(torch model, torch.optim, our model, fusedopt.torch) from the same seed."""
    kwargs = kwargs or CONFIGS[name]
    a, b = make_model(dtype), make_model(dtype)
    return a, getattr(torch.optim, name)(a.parameters(), **kwargs), b, getattr(ft, name)(b.parameters(), **kwargs)


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_none_grads_are_skipped_like_torch(name):
    """Frozen parameters: no state, no step count, no weight decay, as torch (state read only
    at the end: the engine's own counters)."""

    def freeze(t, m):
        params = list(m.parameters())
        if t < 3:
            params[0].grad = None  # no state until step 4
        if t % 3 == 1:
            params[3].grad = None
        if t == 7:
            for p in params:
                p.grad = None  # a step with no gradient at all

    got, ref = versus_torch(name, CONFIGS[name], batches(torch.float32), before_step=freeze, snap=False)
    compare_trajectory(got, ref, "float32", f"{name} None grads", suite="torch-adapter")


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_replaced_data_is_stepped_not_the_old_buffer(name):
    """``p.data = ...`` at step 5 (a copy), and every step for the last layer's weight (WGAN's
    ``p.data = p.data.clamp(...)``): the new storage is updated, the old one left alone, and
    the step counts go on (state read only at the end)."""
    old: list[torch.Tensor] = []

    def replace(t, m):
        params = list(m.parameters())
        if t == 5:
            old.append(params[0].data)
            params[0].data = params[0].data.clone()
            old.append(params[0].data.clone())  # what the replaced storage held
        params[4].data = params[4].data.clamp(-0.3, 0.3)

    got, ref = versus_torch(name, CONFIGS[name], batches(torch.float32), before_step=replace, snap=False)
    compare_trajectory(got, ref, "float32", f"{name} p.data replaced", suite="torch-adapter")
    replaced, held = old[2:]  # fusedopt.torch's run
    assert torch.equal(replaced, held), "the old storage of a replaced parameter was written"


def test_replaced_data_of_another_shape_is_refused_clearly():
    a, oa, b, ob = _both("Adam")
    train(b, ob, batches(torch.float32, 2), snap=False)
    w = list(b.parameters())[0]
    w.data = torch.zeros(3, 3)
    w.grad = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="shape"):
        ob.step()


def test_params_appended_to_a_group_keep_everyones_state():
    """torch lets a group's list grow; state stays with its tensor (fusedopt keys by position)."""
    a, oa, b, ob = _both("Adam", lr=1e-2)
    data = batches(torch.float32)
    extra = {m: torch.nn.Parameter(torch.ones(3)) for m in (a, b)}

    def grow(t, m):
        if t == 6:
            opt = oa if m is a else ob
            opt.param_groups[0]["params"].insert(0, extra[m])
        if t >= 6:
            extra[m].grad = torch.full((3,), 0.5)

    ref = train(a, oa, data, before_step=grow, snap=False)
    got = train(b, ob, data, before_step=grow, snap=False)
    compare_trajectory(got, ref, "float32", "appended", suite="torch-adapter")
    assert torch.equal(extra[a], extra[b])
    assert ob.state[extra[b]]["step"] == oa.state[extra[a]]["step"] == STEPS - 6


def test_add_param_group_mid_run_matches_torch():
    a, oa, b, ob = _both("SGD", lr=1e-2, momentum=0.9)
    la, lb = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    lb.load_state_dict(la.state_dict())
    oa.add_param_group({"params": la.parameters(), "lr": 0.1, "nesterov": True})
    ob.add_param_group({"params": lb.parameters(), "lr": 0.1, "nesterov": True})
    for opt, lin in ((oa, la), (ob, lb)):
        for _ in range(3):
            opt.zero_grad()
            lin(torch.ones(2, 3)).square().sum().backward()
            opt.step()
    for p, q in zip(la.parameters(), lb.parameters()):  # bitwise where torch's FMAs are used too
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)  # the parity suite's float32 bounds
    assert ob.param_groups[1]["lr"] == 0.1 and ob.param_groups[1]["nesterov"] is True


# ---- schedulers -----------------------------------------------------------------------------

SCHEDULERS = {
    "StepLR": ("SGD", {"lr": 0.1, "momentum": 0.9}, lambda o: torch.optim.lr_scheduler.StepLR(o, 4, 0.5)),
    "OneCycleLR": ("Adam", {"lr": 0.01}, lambda o: torch.optim.lr_scheduler.OneCycleLR(o, 0.05, total_steps=STEPS + 1)),
    "CosineAnnealingLR": ("AdamW", {"lr": 0.01}, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7)),
    "ReduceLROnPlateau": ("RMSprop", {"lr": 0.01}, lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=1)),
}


@pytest.mark.parametrize("sched", list(SCHEDULERS))
def test_torch_lr_schedulers_drive_the_step(sched):
    """The scheduler writes torch's param_groups (lr, and momentum/betas for OneCycleLR); the
    step reads them: same lr sequence, same trajectory as torch."""
    name, kwargs, make = SCHEDULERS[sched]
    runs = []
    for opt_cls in (getattr(torch.optim, name), getattr(ft, name)):
        model = make_model(torch.float32)
        opt = opt_cls(model.parameters(), **kwargs)
        scheduler = make(opt)
        lrs, snaps = [], []
        for batch in batches(torch.float32):
            opt.zero_grad()
            loss = backward(model, batch)
            opt.step()
            scheduler.step(loss.item()) if sched == "ReduceLROnPlateau" else scheduler.step()
            lrs.append(opt.param_groups[0]["lr"])
            snaps.append(_torch_snapshot(opt, list(model.parameters())))
        runs.append((lrs, snaps))
    (lrs_t, ref), (lrs_f, got) = runs
    assert lrs_f == lrs_t
    assert len(set(lrs_t)) > 2, "the schedule must change the lr"
    compare_trajectory(got, ref, "float32", sched, suite="torch-adapter")


def test_lr_edited_by_hand_applies_at_the_next_step():
    model = make_model(torch.float32)
    opt = ft.SGD(model.parameters(), lr=0.1)
    opt.param_groups[0]["lr"] = 0.0
    before = [p.detach().clone() for p in model.parameters()]
    backward(model, batches(torch.float32, 1)[0])
    opt.step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


# ---- state_dict -----------------------------------------------------------------------------

SWITCH = 8


def _continue(model, opt, data):
    return train(model, opt, data, snap=True)[1:]


@pytest.mark.parametrize("name", TORCH_NAMES)
@pytest.mark.parametrize("direction", ["to-torch", "from-torch"])
def test_state_dict_moves_between_torch_and_fusedopt(name, direction):
    """Saved by one after SWITCH steps, loaded by the other: the loaded state is the saved
    one exactly, and the run goes on as an uninterrupted run of the loader would."""
    src_cls, dst_cls = (getattr(ft, name), getattr(torch.optim, name))
    if direction == "from-torch":
        src_cls, dst_cls = dst_cls, src_cls
    data = batches(torch.float32)
    a = make_model(torch.float32)
    oa = src_cls(a.parameters(), **CONFIGS[name])
    train(a, oa, data[:SWITCH], snap=False)
    sd = oa.state_dict()
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    sd = torch.load(buffer, weights_only=True)  # only tensors and plain values inside

    b = make_model(torch.float32)
    b.load_state_dict(a.state_dict())
    ob = dst_cls(b.parameters(), lr=0.5)  # the hyperparameters come from the state dict
    ob.load_state_dict(sd)
    loaded = _torch_snapshot(ob, list(b.parameters()))
    assert_bitwise([loaded], [_torch_snapshot(oa, list(a.parameters()))], f"{name} {direction} after load")
    for ga, gb in zip(oa.param_groups, ob.param_groups):
        for k in CONFIGS[name]:
            assert ga[k] == gb[k], k

    # the loader continues as it would have from the start
    c = make_model(torch.float32)
    oc = dst_cls(c.parameters(), **CONFIGS[name])
    train(c, oc, data[:SWITCH], snap=False)
    record: list = []
    ref = train(c, oc, data[SWITCH:], record=record)[1:]
    got = train(b, ob, data[SWITCH:], grads=record)[1:]  # the same gradients (see versus_torch)
    compare_trajectory(got, ref, "float32", f"{name} {direction}", suite="torch-adapter", first_step=SWITCH + 1)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bitwise(name):
    data = batches(torch.float64)
    a = make_model(torch.float64)
    oa = getattr(ft, name)(a.parameters(), **CONFIGS[name])
    train(a, oa, data[:SWITCH], snap=False)
    b = copy.deepcopy(a)
    ob = getattr(ft, name)(b.parameters())
    ob.load_state_dict(oa.state_dict())
    assert_bitwise(_continue(b, ob, data[SWITCH:]), _continue(a, oa, data[SWITCH:]), name)


def test_state_dict_keeps_param_names_and_scheduler_keys():
    model = make_model(torch.float32)
    opt = ft.AdamW(model.named_parameters(), lr=0.01)
    torch.optim.lr_scheduler.StepLR(opt, 2)
    sd = opt.state_dict()
    group = sd["param_groups"][0]
    assert group["param_names"] == [n for n, _ in model.named_parameters()]
    assert group["initial_lr"] == 0.01
    assert set(torch.optim.AdamW(model.parameters()).state_dict()["param_groups"][0]) <= set(group)


def test_load_state_dict_is_all_or_nothing():
    a, oa, b, ob = _both("Adam")
    train(b, ob, batches(torch.float32, 3), snap=False)
    before = ob.state_dict()
    bad = copy.deepcopy(before)
    bad["state"][0]["exp_avg"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="shape"):
        ob.load_state_dict(bad)
    after = ob.state_dict()
    assert all(torch.equal(before["state"][i][k], after["state"][i][k]) for i in before["state"] for k in before["state"][i])


def test_pickle_keeps_model_and_optimizer_together():
    data = batches(torch.float32)
    model = make_model(torch.float32)
    opt = ft.NAdam(model.parameters(), **RICH_CONFIGS["NAdam"])
    train(model, opt, data[:SWITCH], snap=False)
    model2, opt2 = pickle.loads(pickle.dumps((model, opt)))
    assert opt2.param_groups[0]["params"][0] is next(model2.parameters())
    assert_bitwise(_continue(model2, opt2, data[SWITCH:]), _continue(model, opt, data[SWITCH:]), "pickled")


# ---- closure, hooks, zero_grad --------------------------------------------------------------


def test_closure_runs_with_grad_enabled_and_returns_the_loss():
    model = make_model(torch.float32)
    opt = ft.Adam(model.parameters())
    batch = batches(torch.float32, 1)[0]

    def closure():
        opt.zero_grad()
        return backward(model, batch)

    with torch.no_grad():
        loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.requires_grad
    assert opt.state[next(model.parameters())]["step"] == 1


def test_step_hooks_and_zero_grad_are_torchs():
    model = make_model(torch.float32)
    opt = ft.SGD(model.parameters(), lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kwargs: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append("post"))
    backward(model, batches(torch.float32, 1)[0])
    opt.step()
    assert calls == ["pre", "post"]
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_gradient_of_a_graph_and_non_contiguous_gradient():
    """A gradient that requires grad (backward(create_graph=True)) and one assigned by hand
    with other strides: torch steps both, so do we."""
    runs = []
    for opt_cls in (torch.optim.Adam, ft.Adam):
        w = torch.nn.Parameter(torch.arange(6.0).reshape(2, 3))
        v = torch.nn.Parameter(torch.ones(3, 2))
        opt = opt_cls([w, v], lr=0.1)
        (w**3).sum().backward(create_graph=True)
        v.grad = torch.arange(6.0).reshape(2, 3).t()  # non-contiguous
        opt.step()
        runs.append((w.detach().clone(), v.detach().clone()))
    assert all(torch.equal(x, y) for x, y in zip(*runs))


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adafactor"])
def test_dense_permuted_parameters_step_in_place_as_contiguous_ones(name):
    """A channels_last convolution weight and a transposed matrix are stepped in place, in their
    own layout, exactly as contiguous copies of them (Adafactor, whose factored state is indexed in
    C order, refuses the permuted matrices by name)."""
    gen = torch.Generator().manual_seed(0)
    conv = torch.randn(4, 3, 3, 3, generator=gen)
    mat = torch.randn(6, 5, generator=gen)
    permuted = [torch.nn.Parameter(conv.clone().to(memory_format=torch.channels_last)),
                torch.nn.Parameter(mat.t().contiguous().t())]
    contiguous = [torch.nn.Parameter(conv.clone()), torch.nn.Parameter(mat.clone())]
    assert not any(p.is_contiguous() for p in permuted)
    if name == "Adafactor":
        with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[0\]: must be C-contiguous"):
            ft.Adafactor(permuted)
        return
    addresses = [p.data_ptr() for p in permuted]
    opts = [getattr(ft, name)(ps, lr=0.1) for ps in (permuted, contiguous)]
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=gen) for p in contiguous]
        for ps, opt in zip((permuted, contiguous), opts):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(permuted, contiguous))
    assert [p.data_ptr() for p in permuted] == addresses and permuted[0].is_contiguous(memory_format=torch.channels_last)


def test_tensor_hyperparameters_as_torch_takes_them():
    """torch takes lr and betas' items as one-element tensors (fused=True); so do we, at their
    value, in the constructor and in a loaded state_dict's groups."""
    def run(make):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(7))
        opt = make([w])
        for t in range(4):
            w.grad = torch.full((7,), 0.1 * (t + 1))
            opt.step()
        return w.detach().clone(), opt
    tensors = dict(lr=torch.tensor(1e-2), betas=(torch.tensor(0.8), torch.tensor(0.99)))
    floats = dict(lr=tensors["lr"].item(), betas=tuple(b.item() for b in tensors["betas"]))  # (float32 values)
    by_tensor, opt = run(lambda ps: ft.Adam(ps, fused=True, **tensors))
    by_float, _ = run(lambda ps: ft.Adam(ps, **floats))
    assert torch.equal(by_tensor, by_float)
    reference, _ = run(lambda ps: torch.optim.Adam(ps, fused=TORCH_FUSES or None, **tensors))
    torch.testing.assert_close(by_tensor, reference, rtol=1e-6, atol=1e-7)
    _, from_torch = run(lambda ps: torch.optim.Adam(ps, **tensors))
    loaded = ft.Adam([torch.nn.Parameter(torch.zeros(7))])
    assert isinstance(from_torch.state_dict()["param_groups"][0]["lr"], torch.Tensor)
    loaded.load_state_dict(from_torch.state_dict())
    assert loaded.param_groups[0]["lr"] == floats["lr"]
    loaded.param_groups[0]["params"][0].grad = torch.ones(7)
    loaded.step()


# ---- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    [{"foreach": True}, {"foreach": False}, {"fused": False}, {"capturable": True}, {"differentiable": True}],
    ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()),
)
def test_implementation_flags_other_than_fused_are_refused(flag):
    with pytest.raises(ValueError, match="fusedopt is always fused"):
        ft.Adam(make_model(torch.float32).parameters(), **flag)


@pytest.mark.parametrize("flags", [{}, {"fused": True}, {"fused": None, "foreach": None}])
def test_flags_meaning_what_fusedopt_does_are_accepted(flags):
    opt = ft.AdamW(make_model(torch.float32).parameters(), **flags)
    assert opt.param_groups[0]["fused"] == flags.get("fused")


@pytest.mark.parametrize(
    ("tensor", "error", "match"),
    [
        (lambda: torch.zeros(3, device="meta"), TypeError, "is on meta; fusedopt.torch steps CPU tensors only"),
        (lambda: torch.zeros(3, dtype=torch.complex64), TypeError, "dtype torch.complex64 is not supported"),
        (lambda: torch.zeros(3, 8)[:, ::2], ValueError, "must be dense"),
        (lambda: torch.zeros(3, 4).to_sparse(), TypeError, "torch.sparse_coo tensors are not supported"),
    ],
    ids=["device", "dtype", "not-dense", "sparse"],
)
def test_unsupported_parameters_are_refused_by_name(tensor, error, match):
    good = torch.nn.Parameter(torch.zeros(2))
    bad = torch.nn.Parameter(tensor())
    with pytest.raises(error, match=r"param_groups\[0\]\['params'\]\[1\]: " + match):
        ft.SGD([good, bad])
    with pytest.raises(error, match="parameter 'w': " + match):
        ft.SGD([("b", good), ("w", bad)])


def test_failed_add_param_group_changes_nothing():
    model = make_model(torch.float32)
    opt = ft.Adam(model.parameters())
    with pytest.raises(TypeError, match="int32"):
        opt.add_param_group({"params": [torch.zeros(2, dtype=torch.int32)]})
    with pytest.raises(ValueError, match="eps"):  # (a negative lr is legal here, as in torch)
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "eps": -1.0})
    assert len(opt.param_groups) == 1
    backward(model, batches(torch.float32, 1)[0])
    opt.step()


def test_hyperparameters_are_checked_by_fusedopt():
    with pytest.raises(ValueError, match="lr"):
        ft.Adam(make_model(torch.float32).parameters(), lr=-1.0)
    model = make_model(torch.float32)
    opt = ft.Adam(model.parameters())
    opt.param_groups[0]["betas"] = (1.5, 0.9)
    backward(model, batches(torch.float32, 1)[0])
    with pytest.raises(ValueError, match="betas"):
        opt.step()


def test_sparse_gradients_are_refused():
    """Where fusedopt takes no row-sparse gradients (docs/sparse.md); SGD, Adagrad and SparseAdam
    step them (tests/test_sparse.py)."""
    emb = torch.nn.Embedding(5, 3, sparse=True)
    opt = ft.RMSprop(emb.parameters(), lr=0.1)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(TypeError, match="row-sparse"):
        opt.step()


def test_state_cannot_be_assigned():
    opt = ft.SGD(make_model(torch.float32).parameters())
    with pytest.raises(AttributeError, match="load_state_dict"):
        opt.state = {0: {}}


def test_import_fusedopt_does_not_import_torch():
    code = "import sys, fusedopt; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_models_step_as_fusedopt_on_numpy(dtype):
    """bfloat16 / float16 torch parameters (docs/low_precision.md), with float32 master weights
    and int8 state (docs/compressed_state.md): the same bits as fusedopt on NumPy views of them,
    and a state_dict that torch.optim loads and gives back."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(33, 17), torch.nn.Tanh(), torch.nn.Linear(17, 3)).to(dtype)
    np_dtype = ml_dtypes.bfloat16 if dtype == torch.bfloat16 else np.float16
    mirror = [p.detach().float().numpy().astype(np_dtype) for p in model.parameters()]
    options = dict(lr=1e-2, weight_decay=0.01, master_weights=True, state_dtype="int8")
    opt = ft.AdamW(model.parameters(), **options)
    twin = fusedopt.AdamW(mirror, **options)
    for _ in range(6):
        x = torch.randn(8, 33, dtype=dtype)
        opt.zero_grad()
        model(x).float().square().mean().backward()
        opt.step()
        twin.step([p.grad.float().numpy().astype(np_dtype) for p in model.parameters()])
    for p, q in zip(model.parameters(), mirror):
        assert p.dtype == dtype
        np.testing.assert_array_equal(p.detach().float().numpy(), q.astype(np.float32))
    saved = opt.state_dict()  # the int8 state as the float32 values it stores
    back = ft.AdamW(model.parameters(), **options)
    back.load_state_dict(saved)  # quantized again: the same codes
    for key in opt.state:
        for name in ("exp_avg", "exp_avg_sq", "exp_avg_absmax", "exp_avg_sq_absmax", "master"):
            np.testing.assert_array_equal(back.state[key][name].numpy(), opt.state[key][name].numpy())
    reference = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    reference.load_state_dict(saved)  # (torch casts the moments to the parameters' dtype)
    back.load_state_dict(reference.state_dict())
    assert back._fo.state_dtype == "int8" and back.state[model[0].weight]["exp_avg"].dtype == torch.uint8
