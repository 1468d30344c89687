"""Adafactor (rules/adafactor.hpp) beyond the shared tables: >= 2-D parameters factored per
matrix of the last two axes (3-D and 4-D, matrices of several reduction chunks, tall, wide, a row
or a column of one), native against the NumPy reference (bitwise on baseline, within the ulp
bound on the FMA targets); eps1=None taken from the group's first stepping parameter, as torch
does; layouts (C order only for >= 2-D parameters and their factors: refused everywhere an array
is taken, never misread); state_dict, pickle and deepcopy continuing bitwise."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (DTYPES, RICH_CONFIGS, Pair, assert_same_bits, assert_snapshot_equal, make_grad_stream,
                      make_params, snapshot)
from test_core_parity import ULPS

ND_SHAPES = [(2, 3, 5), (3, 70, 130), (9000, 2), (1, 20000), (2, 1, 3, 5), (4, 1), (33,), (), (0, 4)]
STEPS = 26
CONFIGS = [{"lr": 1e-3}, RICH_CONFIGS["Adafactor"], {"lr": 0.5, "eps": (0.5, 5.0), "d": 3.0, "beta2_decay": 0.0}]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["defaults", "rich", "clamps"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nd_native_matches_reference(cfg: dict[str, Any], dtype: Any, target: str) -> None:
    params = make_params(ND_SHAPES, dtype, 31)
    grads = make_grad_stream(ND_SHAPES, dtype, STEPS, 32)
    pair = Pair(fusedopt.Adafactor, params, cfg)
    for t, g in enumerate(grads, start=1):
        where = f"Adafactor {cfg} {np.dtype(dtype).name} [{target}] step {t}: "
        old = None if target == "baseline" else pair.copy_b()
        pair.step(g, hand_out=t == STEPS // 2)
        if target == "baseline":
            pair.assert_bitwise(where)
        else:
            pair.assert_within_ulp(ULPS["Adafactor"], old=old, where=where)
            pair.resync()
    st = pair.a.state
    assert st[0]["row_var"].shape == (2, 3, 1) and st[0]["col_var"].shape == (2, 1, 5) and "variance" not in st[0]
    assert st[6]["variance"].shape == (33,) and "row_var" not in st[6]
    assert st[7]["variance"].shape == () and st[7]["step"] == STEPS


# ---------------------------------------------------------------------------------------------
# eps1=None: torch sets it from the first parameter with a gradient in the group's loop and keeps
# it for the rest of the group (the dtype's machine epsilon).
# ---------------------------------------------------------------------------------------------


def _tiny_stream(dtypes: list[Any], steps: int, skip_first_every: int) -> tuple[list[np.ndarray], list[list[Any]]]:
    """Gradients ~1e-5: a matrix's mean row factor (~1e-10) falls below float32's epsilon but not
    float64's, so which epsilon clamps it shows in every element of the (2, 3) parameter (and
    every product stays a normal number: the kernels flush denormals)."""
    shapes = [(3, 4), (5,), (2, 3)]
    rng = np.random.default_rng(7)
    init = [rng.uniform(0.5, 2.0, s).astype(d) for s, d in zip(shapes, dtypes)]
    grads = []
    for t in range(steps):
        row: list[Any] = [(rng.standard_normal(s) * 1e-5).astype(d) for s, d in zip(shapes, dtypes)]
        if skip_first_every and t % skip_first_every == 1:
            row[0] = None
        grads.append(row)
    return init, grads


ORDERS = {"f32-first": [np.float32, np.float64, np.float64], "f64-first": [np.float64, np.float32, np.float32]}


@pytest.mark.parametrize("skip", [0, 3], ids=["all-step", "first-skips"])
@pytest.mark.parametrize("order", list(ORDERS))
def test_eps1_none_is_the_first_stepping_parameters_epsilon(order: str, skip: int, target: str) -> None:
    init, grads = _tiny_stream(ORDERS[order], 25, skip)
    runs = {}
    for backend in ("native", "numpy"):
        params = [p.copy() for p in init]
        opt = fusedopt.Adafactor(params, backend=backend)
        for row in grads:
            opt.step(row)
        runs[backend] = params
    own = [p.copy() for p in init]  # each parameter alone: its own dtype's epsilon
    for i, p in enumerate(own):
        alone = fusedopt.Adafactor([p])
        for row in grads:
            alone.step([row[i]])
    for i, (a, b) in enumerate(zip(runs["native"], runs["numpy"])):
        if target == "baseline":
            assert_same_bits(a, b, f"param {i}")
        else:
            np.testing.assert_allclose(a, b, rtol=1e-5 if a.dtype == np.float32 else 1e-12)
    # the parameters of the other dtype took the first one's epsilon, not their own
    assert not np.allclose(runs["native"][2], own[2], rtol=1e-3, atol=0)
    torch = pytest.importorskip("torch")
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in init]
    topt = torch.optim.Adafactor(tparams)
    for row in grads:
        for tp, g in zip(tparams, row):
            tp.grad = None if g is None else torch.tensor(g)
        topt.step()
    for i, (a, tp) in enumerate(zip(runs["native"], tparams)):
        rtol = 1e-5 if a.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(a, tp.detach().numpy(), rtol=rtol, atol=0, err_msg=f"param {i} vs torch")


# ---------------------------------------------------------------------------------------------
# Layouts: >= 2-D parameters (and their row/column factors) in C order only
# ---------------------------------------------------------------------------------------------


def _channels_last(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


C_ORDER = r"must be C-contiguous"


def test_non_c_order_refused_at_construction() -> None:
    p = np.asfortranarray(np.ones((3, 4)))
    with pytest.raises(ValueError, match=rf"^params\[0\]: {C_ORDER}: rule 'adafactor' keeps per-row"):
        fusedopt.Adafactor([p])
    with pytest.raises(ValueError, match=rf"^params\['W'\]: {C_ORDER}"):
        fusedopt.Adafactor({"b": np.ones(3), "W": _channels_last(np.ones((2, 3, 4, 5)))})
    with pytest.raises(ValueError, match=rf"^params\[1\]: {C_ORDER}"):
        fusedopt.Adafactor([{"params": [np.ones(3), np.ones((4, 3)).T]}])
    assert_same_bits(p, np.ones((3, 4)), "param")


def test_layouts_that_are_c_order_too_are_taken() -> None:
    """1-D, 0-d, and arrays whose other axes have length 1 (Fortran and C order at once)."""
    arrays = [np.asfortranarray(np.ones((1, 5))), np.asfortranarray(np.ones((4, 1))), np.ones(3)[::1], np.ones(())]
    fusedopt.Adafactor(arrays).step([np.ones_like(a) for a in arrays])


def test_non_c_order_refused_by_add_param_group_and_nothing_changes() -> None:
    w = np.ones((3, 4))
    opt = fusedopt.Adafactor([w])
    opt.step([np.full((3, 4), 0.5)])
    before = snapshot(opt)
    with pytest.raises(ValueError, match=rf"^params\[1\]: {C_ORDER}"):
        opt.add_param_group({"params": [np.ones(2), np.asfortranarray(np.ones((2, 3)))]})
    assert len(opt.param_groups) == 1
    assert_snapshot_equal(snapshot(opt), before)


def test_non_c_order_replacement_refused_at_the_step_and_nothing_changes() -> None:
    params = make_params([(3, 4), (5,)], np.float64, 1)
    opt = fusedopt.Adafactor(params)
    opt.step(make_grad_stream([(3, 4), (5,)], np.float64, 1, 2)[0])
    before = snapshot(opt)
    good = opt.param_groups[0]["params"][0]
    opt.param_groups[0]["params"][0] = np.asfortranarray(good)
    with pytest.raises(ValueError, match=rf"^parameter 0: {C_ORDER}"):
        opt.step([np.ones((3, 4)), np.ones(5)])
    opt.param_groups[0]["params"][0] = good
    assert_snapshot_equal(snapshot(opt), before)
    opt.step([np.ones((3, 4)), np.ones(5)])  # and it still works


@pytest.mark.parametrize("slot", ["row_var", "col_var"])
def test_non_c_order_factor_replaced_through_state_refused(slot: str) -> None:
    p = make_params([(3, 4, 5)], np.float32, 3)[0]
    opt = fusedopt.Adafactor([p])
    opt.step([np.ones((3, 4, 5), np.float32)])
    before = snapshot(opt)
    st = opt.state[0]
    good = st[slot]
    st[slot] = np.asfortranarray(good)
    with pytest.raises(ValueError, match=rf"^{slot} for parameter 0: {C_ORDER}"):
        opt.step([np.ones((3, 4, 5), np.float32)])
    st[slot] = good
    assert_snapshot_equal(snapshot(opt), before)


def test_non_c_order_factors_in_a_state_dict_load_as_c_order() -> None:
    """load_state_dict copies state arrays of other shapes into C order: a Fortran-ordered saved
    row_var/col_var loads and the run continues bitwise."""
    shapes = [(3, 4, 5), (7,)]
    grads = make_grad_stream(shapes, np.float64, 6, 5)
    a = fusedopt.Adafactor(make_params(shapes, np.float64, 4))
    for g in grads[:3]:
        a.step(g)
    sd = a.state_dict()
    sd["state"][0] = {k: (np.asfortranarray(v) if isinstance(v, np.ndarray) else v) for k, v in sd["state"][0].items()}
    b = fusedopt.Adafactor([p.copy() for p in a.params])
    b.load_state_dict(sd)
    for g in grads[3:]:
        a.step(g)
        b.step(g)
    assert_snapshot_equal(snapshot(b), snapshot(a))


def test_gradients_in_another_layout_are_read_through_a_copy() -> None:
    shapes = [(2, 3, 4, 5)]
    grads = make_grad_stream(shapes, np.float32, 4, 9)
    a = fusedopt.Adafactor(make_params(shapes, np.float32, 8))
    b = fusedopt.Adafactor(make_params(shapes, np.float32, 8))
    for g in grads:
        a.step(g)
        b.step([_channels_last(g[0])])  # the same values in another memory order
    assert_snapshot_equal(snapshot(b), snapshot(a))


# ---------------------------------------------------------------------------------------------
# Saving and copying
# ---------------------------------------------------------------------------------------------

SAVE_SHAPES = [(3, 70, 130), (2, 1, 3, 5), (9, 4), (17,), ()]


def _continue(opt: Any, grads: list[list[np.ndarray]]) -> dict[str, Any]:
    for g in grads:
        opt.step(g)
    return snapshot(opt)


@pytest.mark.parametrize("how", ["state_dict", "pickle", "deepcopy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_saved_and_copied_optimizers_continue_bitwise(how: str, dtype: Any) -> None:
    grads = make_grad_stream(SAVE_SHAPES, dtype, 8, 12)
    opt = fusedopt.Adafactor(make_params(SAVE_SHAPES, dtype, 11), **RICH_CONFIGS["Adafactor"])
    for g in grads[:4]:
        opt.step(g)
    if how == "state_dict":
        sd = opt.state_dict()
        assert sd["state"][0]["row_var"].shape == (3, 70, 1) and sd["state"][0]["col_var"].shape == (3, 1, 130)
        other = fusedopt.Adafactor([p.copy() for p in opt.params], **RICH_CONFIGS["Adafactor"])
        other.load_state_dict(copy.deepcopy(sd))
    elif how == "pickle":
        other = pickle.loads(pickle.dumps(opt))
    else:
        other = copy.deepcopy(opt)
    assert all(a is not b for a, b in zip(other.params, opt.params))
    assert_snapshot_equal(_continue(other, grads[4:]), _continue(opt, grads[4:]), f"{how}: ")
