"""Parameters in any dense layout (docs/layouts.md): Fortran order, channels_last, any order of
the axes, updated in place as one flat range; state arrays take the parameter's layout;
gradients in another layout, or not dense, are read through a copy in the parameter's layout.
Every result is compared bit for bit with the same run in C order (an element-wise update does
not depend on where an element sits), on every target."""

from __future__ import annotations

import copy
from typing import Any, Callable

import fusedopt
import numpy as np
import pytest
from conftest import OPTIMIZERS, RICH_CONFIGS, assert_same_bits, make_grad_stream, make_params

SHAPE = (2, 3, 5, 7)
# Rules with per-row/per-column state of >= 2-D parameters (Adafactor) take C order only.
PER_MATRIX_STATE = {"Adafactor"}


def fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def channels_last(a: np.ndarray) -> np.ndarray:
    """NCHW values with NHWC memory (torch's channels_last seen through NumPy)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def permuted(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(2, 0, 3, 1)).transpose(1, 3, 0, 2)


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fortran": fortran, "channels_last": channels_last, "permuted": permuted,
}
GRAD_LAYOUTS: dict[str, Callable[[np.ndarray, Callable[[np.ndarray], np.ndarray]], np.ndarray]] = {
    "same": lambda g, lay: lay(g),
    "c-order": lambda g, lay: np.ascontiguousarray(g),
    "strided": lambda g, lay: np.repeat(g, 2, axis=3)[..., ::2],  # not dense
}


def _run(name: str, params: list[np.ndarray], grads: list[list[np.ndarray]], **opts: Any) -> Any:
    opt = OPTIMIZERS[name](params, **RICH_CONFIGS[name], **opts)
    for g in grads:
        opt.step(g)
    return opt


@pytest.mark.parametrize("grad_layout", list(GRAD_LAYOUTS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_layout_matches_c_order(name: str, layout: str, grad_layout: str, target: str) -> None:
    lay = LAYOUTS[layout]
    p0 = make_params([SHAPE], np.float32, seed=1)
    grads = make_grad_stream([SHAPE], np.float32, 6, seed=2)
    if name in PER_MATRIX_STATE:  # refused, not misread (test_adafactor.py: every entry point)
        with pytest.raises(ValueError, match=r"^params\[0\]: must be C-contiguous"):
            _run(name, [lay(p) for p in p0], grads)
        return
    c = _run(name, [p.copy() for p in p0], grads)
    mine = [lay(p) for p in p0]
    assert not mine[0].flags.c_contiguous
    data = mine[0].__array_interface__["data"][0]
    o = _run(name, mine, [[GRAD_LAYOUTS[grad_layout](g, lay) for g in row] for row in grads])
    assert o.params[0] is mine[0] and mine[0].__array_interface__["data"][0] == data  # in place
    assert_same_bits(np.ascontiguousarray(mine[0]), c.params[0], "parameter")
    for key, st in c.state.items():
        for slot, v in st.items():
            if isinstance(v, np.ndarray):
                mv = o.state[key][slot]
                assert mv.strides == tuple(s // mine[0].itemsize * mv.itemsize for s in mine[0].strides), slot
                assert_same_bits(np.ascontiguousarray(mv), v, f"state {slot}")


def test_low_precision_fortran_and_state_dict() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = ml_dtypes.bfloat16
    p0 = make_params([SHAPE], bf, seed=3)
    grads = make_grad_stream([SHAPE], bf, 6, seed=4)
    c = _run("Adam", [p.copy() for p in p0], grads[:3], master_weights=True)
    f = _run("Adam", [fortran(p) for p in p0], grads[:3], master_weights=True)
    assert f.state[0]["master"].flags.f_contiguous and f.state[0]["exp_avg"].dtype == np.float32
    # a C-order checkpoint loads into the Fortran-order optimizer (converted to its layout)
    g = OPTIMIZERS["Adam"]([fortran(p) for p in c.params], **RICH_CONFIGS["Adam"], master_weights=True)
    g.load_state_dict(copy.deepcopy(c.state_dict()))
    assert g.state[0]["exp_avg_sq"].flags.f_contiguous
    for row in grads[3:]:
        for o in (c, f, g):
            o.step(row if o is c else [fortran(x) for x in row])
    for o in (f, g):
        assert_same_bits(np.ascontiguousarray(o.params[0]), c.params[0], "parameter")


def test_layout_errors_change_nothing() -> None:
    p = fortran(make_params([SHAPE], np.float32, seed=5)[0])
    opt = fusedopt.Adam([p], lr=1e-2)
    opt.step([np.ones(SHAPE, np.float32)])
    before = p.copy(order="K")
    opt.state[0]["exp_avg"] = np.zeros(SHAPE, np.float32)  # C order: not the parameter's layout
    with pytest.raises(ValueError, match=r"exp_avg for parameter 0: its memory layout .* not the parameter's"):
        opt.step([np.ones(SHAPE, np.float32)])
    assert_same_bits(p, before, "parameter")
    with pytest.raises(ValueError, match=r"params\[0\]: must be dense"):
        fusedopt.SGD([np.ones(8, np.float32)[::-1]], lr=0.1)
    with pytest.raises(ValueError, match=r"params\[0\]: must be dense"):
        fusedopt.SGD([np.ones((4, 6), np.float32)[:, :3]], lr=0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_clip_functions_take_any_dense_layout(layout: str, dtype: type) -> None:
    """The standalone clip functions run over a dense array in memory order: the same bits as on
    its elements laid out flat in that order (C order is the case of a flat array)."""
    rng = np.random.default_rng(5)
    values = [rng.standard_normal(SHAPE).astype(dtype) * 3, rng.standard_normal((4, 6)).astype(dtype)]
    laid = [LAYOUTS[layout](values[0]), fortran(values[1])]
    flat = [np.ravel(a, order="K").copy() for a in laid]  # the same elements, in memory order
    assert fusedopt.get_total_norm(laid, 3.0) == fusedopt.get_total_norm(flat, 3.0)
    assert fusedopt.get_total_norm(laid, 0) == fusedopt.get_total_norm(flat, 0)
    assert fusedopt.clip_grad_norm_(laid, 1.0) == fusedopt.clip_grad_norm_(flat, 1.0)
    fusedopt.clip_grad_value_(laid, 0.05)
    fusedopt.clip_grad_value_(flat, 0.05)
    for a, f in zip(laid, flat):
        assert_same_bits(np.ravel(a, order="K"), f, layout)
    assert not laid[0].flags.c_contiguous and laid[1].flags.f_contiguous  # (in place, in their layout)
    strided = np.repeat(values[0], 2, axis=3)[..., ::2]
    with pytest.raises(ValueError, match=r"grads\[0\]: must be dense"):
        fusedopt.clip_grad_norm_([strided], 1.0)
