"""The state a step creates comes from one buffer per param group, dtype and slot
(cpp/bindings/state_arena.hpp, docs/state_arena.md): views laid out like their parameters, in
parameter order, alive as long as any of them is; results, state_dict, load_state_dict,
pickle, copies and replacement through opt.state behave as with arrays of their own."""

from __future__ import annotations

import copy
import gc
import pickle
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    OPTIMIZERS,
    RICH_CONFIGS,
    assert_same_bits,
    assert_snapshot_equal,
    at_phase,
    live_state,
    make_grad_stream,
    make_params,
    snapshot,
)

NAMES = list(OPTIMIZERS)
# Vector tails (1, 7, 33), a scalar, a matrix, a parameter in Fortran order, and one long enough
# for a step to run its first cache line apart, 16 bytes past a line.
SHAPES = [(1,), (7,), (33,), (), (1000,), (3, 5), (4, 6), (1030,)]
FORTRAN, LONG = 6, 7
# From this many elements a step runs a parameter's first cache line apart and its new state
# starts where the parameter does on its line; a shorter one's starts a line (segments.hpp,
# kPeelMinElements; state_arena.hpp, state_lead).
PEEL_MIN_ELEMENTS = 1024


def state_phase(p: np.ndarray) -> int:
    """Where a new state array of parameter `p` starts past a 64-byte boundary."""
    return p.ctypes.data % 64 if p.size >= PEEL_MIN_ELEMENTS else 0


def fortran_params(dtype: Any, seed: int) -> list[np.ndarray]:
    params = make_params(SHAPES, dtype, seed)
    params[FORTRAN] = np.asfortranarray(params[FORTRAN])
    params[LONG] = at_phase(params[LONG], 16)
    return params


def copies(arrays: list[np.ndarray]) -> list[np.ndarray]:
    return [a.copy(order="K") for a in arrays]  # the Fortran parameter stays one


def two_groups(name: str, params: list[np.ndarray]) -> Any:
    cfg = dict(RICH_CONFIGS[name])
    return OPTIMIZERS[name]([{"params": params[:4]}, {"params": params[4:], "lr": cfg.get("lr", 1e-3) / 2}], **cfg)


def arrays_of(opt: Any) -> dict[tuple[int, str], np.ndarray]:
    return {(k, n): v for k, st in live_state(opt).items() for n, v in st.items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_created_state_is_views_of_one_buffer_per_group_and_slot(dtype: Any) -> None:
    params = fortran_params(dtype, 1)
    opt = two_groups("Adam", params)  # amsgrad: three slots
    opt.step(make_grad_stream(SHAPES, dtype, 1, 2)[0])
    state = arrays_of(opt)
    assert {n for _, n in state} == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    for group in (range(4), range(4, len(SHAPES))):
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            views = [state[(i, name)] for i in group]
            base = views[0].base
            assert isinstance(base, np.ndarray) and base.dtype == np.uint8
            assert all(v.base is base for v in views), "one buffer per group and slot"
            starts = [v.ctypes.data for v in views]
            assert starts == sorted(starts), "in parameter order"
            for v, s in zip(views, starts[1:]):
                assert -(-(v.ctypes.data + v.nbytes) // 64) * 64 <= s - s % 64, "each on cache lines of its own"
            assert all(v.ctypes.data % 64 == state_phase(params[i]) for v, i in zip(views, group)), \
                "placed on its lines as its parameter is (Segment::lead), or at a line's start"
    bases = {id(state[(i, n)].base) for i in (0, 4) for n in ("exp_avg", "exp_avg_sq")}
    assert len(bases) == 4, "groups and slots do not share buffers"
    for (i, _), v in state.items():
        p = params[i]
        assert v.dtype == p.dtype and v.shape == p.shape and v.flags.writeable
        assert v.flags.c_contiguous == p.flags.c_contiguous and v.flags.f_contiguous == p.flags.f_contiguous
    assert state[(FORTRAN, "exp_avg")].flags.f_contiguous and not state[(FORTRAN, "exp_avg")].flags.c_contiguous


@pytest.mark.parametrize("state_dtype", [None, "int8"])
def test_adagrad_state_made_at_construction_is_pooled_per_group(state_dtype: Any) -> None:
    """Adagrad's sum exists from construction (torch's initial_accumulator_value): one buffer per
    group and slot all the same, holding the initial value, each array in its parameter's layout."""
    params = fortran_params(np.float32, 3)
    opt = fusedopt.Adagrad([{"params": params[:4]}, {"params": params[4:]}], initial_accumulator_value=0.25,
                           state_dtype=state_dtype)
    state = arrays_of(opt)
    for group in (range(4), range(4, len(SHAPES))):
        for name in {n for _, n in state}:
            views = [state[(i, name)] for i in group]
            assert all(v.base is views[0].base and v.base is not None for v in views), name
    if state_dtype is None:
        assert all(np.all(state[(i, "sum")] == 0.25) for i in range(len(SHAPES)))
        assert all(state[(i, "sum")].ctypes.data % 64 == state_phase(params[i]) for i in range(len(SHAPES)))
        assert state[(FORTRAN, "sum")].flags.f_contiguous and not state[(FORTRAN, "sum")].flags.c_contiguous


def test_large_and_lone_arrays_keep_a_buffer_of_their_own() -> None:
    """Over 1 MiB an array is a stream of its own; a buffer for one array would only hide it."""
    big = np.ones(300_000, np.float32)  # 1.2 MB
    opt = fusedopt.Adam([big, np.ones(10, np.float32), np.ones(10, np.float32)], lr=1e-3)
    opt.step([np.ones(300_000, np.float32), np.ones(10, np.float32), np.ones(10, np.float32)])
    state = arrays_of(opt)
    assert state[(1, "exp_avg")].base is state[(2, "exp_avg")].base is not None
    lone = fusedopt.Adam([np.ones(10, np.float32)[1:]], lr=1e-3)
    lone.step([np.ones(9, np.float32)])
    for p, v in ((big, state[(0, "exp_avg")]), (lone.params[0], arrays_of(lone)[(0, "exp_avg")])):
        assert v.base is not None and v.base.nbytes < v.nbytes + 128, "a buffer of its own"
        assert v.ctypes.data % 64 == state_phase(p), "placed on its lines as its parameter is, or at a line's start"


@pytest.mark.parametrize("name", NAMES)
def test_results_do_not_depend_on_where_the_state_lives(name: str) -> None:
    """Arena views, arrays of their own (unpickled), a replaced array, loaded state: same bits."""
    steps = 8
    # (Adafactor takes >= 2-D parameters in C order only: test_adafactor.py)
    params = make_params(SHAPES, np.float32, 3) if name == "Adafactor" else fortran_params(np.float32, 3)
    grads = make_grad_stream(SHAPES, np.float32, steps, 4)
    runs = [two_groups(name, copies(params)) for _ in range(4)]
    for opt in runs:
        opt.step(grads[0])
    runs[1] = pickle.loads(pickle.dumps(runs[1]))  # one array each
    runs[3].load_state_dict(runs[3].state_dict())  # pooled again
    before = arrays_of(runs[2])
    some = next(iter(before))  # replaced through opt.state by a copy
    mine = runs[2].state[some[0]][some[1]].copy()
    runs[2].state[some[0]][some[1]] = mine
    for t in range(1, steps):
        for opt in runs:
            opt.step(grads[t])
    assert runs[2].state[some[0]][some[1]] is mine, "a replaced state array is that array"
    assert all(v is before[k] for k, v in arrays_of(runs[2]).items() if k != some), "the others stay"
    want = snapshot(runs[0])
    assert_snapshot_equal(snapshot(runs[1]), want, f"{name} own arrays: ")
    assert_snapshot_equal(snapshot(runs[2]), want, f"{name} one replaced: ")
    assert_snapshot_equal(snapshot(runs[3]), want, f"{name} loaded: ")


def test_state_for_parameters_first_stepped_later() -> None:
    """Parameters with no gradient get no state; when they get one, a new buffer holds theirs.
    Elementwise, each parameter's run equals an optimizer of its own (no shared buffer)."""
    params = fortran_params(np.float32, 5)
    grads = make_grad_stream(SHAPES, np.float32, 6, 6)
    for t in (0, 1):
        grads[t] = [g if i % 2 == 0 else None for i, g in enumerate(grads[t])]
    opt = fusedopt.Adam(copies(params), lr=1e-2, weight_decay=0.1)
    alone = [fusedopt.Adam([p], lr=1e-2, weight_decay=0.1) for p in copies(params)]
    for row in grads:
        opt.step(row)
        for o, g in zip(alone, row):
            if g is not None:
                o.step([g])
    state = arrays_of(opt)
    assert state[(0, "exp_avg")].base is not state[(1, "exp_avg")].base
    assert state[(1, "exp_avg")].base is state[(3, "exp_avg")].base
    for i, o in enumerate(alone):
        assert_same_bits(opt.params[i], o.params[0], f"param {i}")
        for n in ("exp_avg", "exp_avg_sq"):
            assert_same_bits(state[(i, n)], arrays_of(o)[(0, n)], f"state[{i}][{n!r}]")


def test_views_outlive_the_optimizer_and_state_dict_copies_them() -> None:
    params = make_params(SHAPES, np.float32, 7)
    opt = fusedopt.Adam(params, lr=1e-2)
    opt.step(make_grad_stream(SHAPES, np.float32, 1, 8)[0])
    held = opt.state[4]["exp_avg"]
    values = held.copy()
    saved = opt.state_dict()
    assert all(v.base is None or v.base.dtype != np.uint8
               for st in saved["state"].values() for v in st.values() if isinstance(v, np.ndarray))
    del opt, params
    gc.collect()
    junk = [np.full(1000, 7.0, np.float32) for _ in range(100)]  # would reuse freed memory
    assert_same_bits(held, values, "a state array after its optimizer is gone")
    held += 1.0  # still writable, still its own
    assert_same_bits(saved["state"][4]["exp_avg"], values, "the state_dict copy")
    del junk


@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy"])
def test_pickle_and_copies_of_arena_state(how: str) -> None:
    params = fortran_params(np.float32, 9)
    grads = make_grad_stream(SHAPES, np.float32, 6, 10)
    opt = two_groups("Adam", params)
    for t in range(3):
        opt.step(grads[t])
    other = {"pickle": lambda o: pickle.loads(pickle.dumps(o)), "deepcopy": copy.deepcopy, "copy": copy.copy}[how](opt)
    mine, theirs = arrays_of(opt), arrays_of(other)
    if how == "copy":  # a shallow copy shares the arrays, as any does
        assert all(theirs[k] is v for k, v in mine.items())
        return
    assert all(not np.shares_memory(theirs[k], v) for k, v in mine.items())
    assert theirs[(FORTRAN, "exp_avg")].flags.f_contiguous
    for t in range(3, 6):
        opt.step(grads[t])
        other.step(grads[t])
    assert_snapshot_equal(snapshot(other), snapshot(opt), f"{how}: ")


def test_low_precision_parameters_get_float32_views() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    params = [np.ones(n, ml_dtypes.bfloat16) for n in (7, 33, 100)]
    opt = fusedopt.Adam(params, lr=1e-3, master_weights=True)
    opt.step([np.ones(n, ml_dtypes.bfloat16) for n in (7, 33, 100)])
    state = arrays_of(opt)
    assert all(state[(i, "exp_avg")].dtype == np.float32 for i in range(3))
    assert state[(0, "exp_avg")].base is state[(2, "exp_avg")].base is not None
    assert state[(0, "master")].dtype == np.float32


def test_load_state_dict_pools_in_parameter_order() -> None:
    """Loaded state is laid out as a step creates it (whatever the saved dict's key order), a
    copy of what was saved, each array in its parameter's layout."""
    params = fortran_params(np.float32, 11)
    opt = two_groups("Adam", params)
    opt.step(make_grad_stream(SHAPES, np.float32, 1, 12)[0])
    saved = opt.state_dict()
    saved["state"] = dict(reversed(list(saved["state"].items())))
    fresh = two_groups("Adam", copies(params))
    fresh.load_state_dict(saved)
    state = arrays_of(fresh)
    for group in (range(4), range(4, len(SHAPES))):
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            views = [state[(i, name)] for i in group]
            assert all(v.base is views[0].base is not None for v in views)
            starts = [v.ctypes.data for v in views]
            assert starts == sorted(starts)
            assert all(v.ctypes.data % 64 == state_phase(fresh.params[i]) for v, i in zip(views, group)), \
                "placed on its lines as its parameter is, or at a line's start"
            for i in group:
                assert_same_bits(state[(i, name)], saved["state"][i][name], f"state[{i}][{name!r}]")
                assert not np.shares_memory(state[(i, name)], saved["state"][i][name])
    assert state[(FORTRAN, "exp_avg")].flags.f_contiguous and not state[(FORTRAN, "exp_avg")].flags.c_contiguous


def test_pooled_copies_leaves_what_it_cannot_pool() -> None:
    from fusedopt import _core

    small = [np.arange(5, dtype=np.float32), np.arange(3, dtype=np.float32)]
    lone = np.arange(4, dtype=np.float64)
    big = np.zeros(300_000, np.float32)
    ints = np.arange(6)
    strided = np.arange(20, dtype=np.float32)[::2]
    got = _core.pooled_copies([small[0], lone, big, ints, small[1], strided])
    assert got[1] is lone and got[2] is big and got[3] is ints and got[5] is strided
    assert got[0].base is got[4].base is not None
    for a, b in ((got[0], small[0]), (got[4], small[1])):
        assert_same_bits(a, b, "pooled copy")
        assert not np.shares_memory(a, b)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
def test_compressed_state_is_pooled_too(state_dtype: str) -> None:
    """bfloat16 codes, int8 codes and their float32 block scales: one buffer per slot each;
    the same bits as arrays of their own (unpickled) and as loaded state."""
    pytest.importorskip("ml_dtypes")
    shapes = [(7,), (300,), (33,), (4, 6), (1000,)]
    params = make_params(shapes, np.float32, 13)
    params[3] = np.asfortranarray(params[3])
    grads = make_grad_stream(shapes, np.float32, 6, 14)
    runs = [fusedopt.Adam(copies(params), lr=1e-2, state_dtype=state_dtype) for _ in range(3)]
    for opt in runs:
        opt.step(grads[0])
    state = arrays_of(runs[0])
    names = {n for _, n in state}
    assert names == ({"exp_avg", "exp_avg_sq"} | ({"exp_avg_absmax", "exp_avg_sq_absmax"} if state_dtype == "int8" else set()))
    for name in names:
        views = [state[(i, name)] for i in range(len(shapes))]
        assert all(v.base is views[0].base is not None for v in views), name
    assert state[(3, "exp_avg")].flags.f_contiguous
    runs[1] = pickle.loads(pickle.dumps(runs[1]))
    runs[2].load_state_dict(runs[2].state_dict())
    loaded = arrays_of(runs[2])
    assert all(loaded[(i, "exp_avg")].base is loaded[(0, "exp_avg")].base is not None for i in range(len(shapes)))
    for t in range(1, 6):
        for opt in runs:
            opt.step(grads[t])
    assert_snapshot_equal(snapshot(runs[1]), snapshot(runs[0]), f"{state_dtype} own arrays: ")
    assert_snapshot_equal(snapshot(runs[2]), snapshot(runs[0]), f"{state_dtype} loaded: ")
