"""FlatParams: named views into two flat buffers, stepped as one array; pickled and copied
with the views still views."""

from __future__ import annotations

import copy
import pickle

import fusedopt
import numpy as np
import pytest

SHAPES = {"W1": (5, 7), "b1": (7,), "W2": (7, 3), "b2": 3}


def _filled(arena: fusedopt.FlatParams, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, view in arena.params.items():
        view[...] = rng.standard_normal(view.shape)
        arena.grads[name][...] = rng.standard_normal(view.shape)


def test_views_are_aligned_slices_of_the_buffers() -> None:
    arena = fusedopt.FlatParams(SHAPES)
    assert len(arena) == 4 and arena.flat_params.dtype == np.float32
    for name, view in arena.params.items():
        assert view.shape == (tuple(SHAPES[name]) if name != "b2" else (3,))
        assert np.shares_memory(view, arena.flat_params) and np.shares_memory(arena.grads[name], arena.flat_grads)
        assert view.ctypes.data % 64 == 0
    _filled(arena, 0)
    padding = np.ones(arena.flat_grads.size, bool)
    for view in arena.grads.values():
        start = (view.ctypes.data - arena.flat_grads.ctypes.data) // 4
        padding[start : start + view.size] = False
    assert padding.any() and not arena.flat_grads[padding].any()  # padding gradients stay 0
    arena.zero_grad()
    assert not arena.flat_grads.any() and all(not g.any() for g in arena.grads.values())


def test_a_flat_step_equals_steps_over_the_separate_arrays() -> None:
    arena = fusedopt.FlatParams(SHAPES)
    _filled(arena, 1)
    separate = {k: v.copy() for k, v in arena.params.items()}
    flat_opt = fusedopt.Adam([arena.flat_params], lr=0.01, weight_decay=0.1)
    opt = fusedopt.Adam(separate, lr=0.01, weight_decay=0.1)
    for _ in range(5):
        flat_opt.step([arena.flat_grads])
        opt.step(arena.grads)
    for name, view in arena.params.items():
        assert view.tobytes() == separate[name].tobytes(), name


@pytest.mark.parametrize("clone", [lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy], ids=["pickle", "deepcopy"])
def test_pickled_or_copied_views_stay_views(clone) -> None:
    arena = fusedopt.FlatParams(SHAPES, dtype=np.float64)
    _filled(arena, 2)
    other = clone(arena)
    assert other.flat_params.dtype == np.float64 and other.layout == arena.layout
    assert other.flat_params.tobytes() == arena.flat_params.tobytes()
    assert not np.shares_memory(other.flat_params, arena.flat_params)
    other.flat_params[:] = 7.0
    other.flat_grads[:] = 3.0
    assert all((v == 7.0).all() for v in other.params.values())  # (they were copies: still the old values)
    assert all((g == 3.0).all() for g in other.grads.values())


def test_pickled_with_its_optimizer_the_run_goes_on_bitwise() -> None:
    arena = fusedopt.FlatParams(SHAPES)
    _filled(arena, 3)
    opt = fusedopt.AdamW([arena.flat_params], lr=0.01)
    opt.step([arena.flat_grads])
    arena2, opt2 = pickle.loads(pickle.dumps((arena, opt)))
    assert opt2.params[0] is arena2.flat_params  # one object in one pickle
    for a, o in ((arena, opt), (arena2, opt2)):
        for _ in range(3):
            o.step([a.flat_grads])
    for name in SHAPES:
        assert arena.params[name].tobytes() == arena2.params[name].tobytes(), name
