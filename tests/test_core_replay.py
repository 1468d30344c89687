"""The steady step (the engine's replayed plan: only the gradients' addresses and the units'
scalars change) computes what a freshly built plan computes, and falls back to building one
whenever anything else changed: a missing gradient, one in another layout, a hyperparameter that
switches a state array on, compressed state, stochastic rounding. The fresh-plan side is a deep
copy taken before every step (a copy builds its plan on its first step)."""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

import fusedopt
import ml_dtypes
import numpy as np
import pytest

from conftest import OPTIMIZERS, RICH_CONFIGS, assert_same_bits, snapshot, assert_unchanged

SHAPES = [(33,), (4, 5), (17,), (6, 40)]


def _model(dtype: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, s).astype(dtype) for s in SHAPES]


def _grads(step: int, dtype: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _same(a: Any, b: Any, what: str) -> None:
    assert a.step_count == b.step_count, what
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa["state"]:
        assert sa["state"][k].keys() == sb["state"][k].keys(), what
        for name, v in sa["state"][k].items():
            if isinstance(v, np.ndarray):
                assert_same_bits(v, sb["state"][k][name], f"{what}: state[{k!r}][{name!r}]")
            else:
                assert v == sb["state"][k][name], f"{what}: state[{k!r}][{name!r}]"
    for i, (x, y) in enumerate(zip(a.params, b.params)):
        assert_same_bits(x, y, f"{what}: param {i}")


def _fortran(g: np.ndarray) -> np.ndarray:
    return np.asfortranarray(g)


# Between steady steps: what changes before step k (grads edited in place of the list, or the
# optimizer's groups edited).
def _script(name: str) -> dict[int, Callable[[Any, list], None]]:
    def drop(opt: Any, grads: list) -> None:
        grads[1] = None

    def fortran(opt: Any, grads: list) -> None:
        grads[3] = _fortran(grads[3])

    def lr(opt: Any, grads: list) -> None:
        opt.param_groups[1]["lr"] = opt.param_groups[1]["lr"] * 0.5

    def toggle(opt: Any, grads: list) -> None:
        g = opt.param_groups[0]
        for flag in ("amsgrad", "maximize", "nesterov", "centered"):
            if flag in g and not (flag == "nesterov" and not g.get("momentum")):
                g[flag] = not g[flag]

    return {4: drop, 7: fortran, 9: lr, 11: toggle, 13: drop}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_steady_steps_equal_fresh_plans(name: str, dtype: Any) -> None:
    params = _model(dtype)
    opt = OPTIMIZERS[name]([{"params": params[:2]}, {"params": params[2:], "lr": 2e-3}], **RICH_CONFIGS[name])
    script = _script(name)
    fresh = copy.deepcopy(opt)
    for k in range(16):
        grads: list = _grads(k, dtype)
        if k in script:
            script[k](opt, grads)
            script[k](fresh, grads)
        fresh = copy.deepcopy(fresh)  # builds its plan at this step
        opt.step(grads)
        fresh.step(grads)
        _same(opt, fresh, f"{name} step {k}")


@pytest.mark.parametrize(
    "options",
    [{"state_dtype": "bfloat16"}, {"state_dtype": "int8"}, {"stochastic_rounding": True, "master_weights": False}],
)
def test_steady_steps_with_rounding_keys(options: dict) -> None:
    """Stochastic rounding draws from a key of (seed, step, parameter): a replayed unit gets the
    key of its step, not the one it was built with."""
    dtype = ml_dtypes.bfloat16 if "stochastic_rounding" in options else np.float32
    params = [p.astype(dtype) for p in _model(np.float32)]
    opt = fusedopt.Adam(params, lr=1e-2, rounding_seed=3, **options)
    fresh = copy.deepcopy(opt)
    for k in range(6):
        grads = [g.astype(dtype) for g in _grads(k, np.float32)]
        fresh = copy.deepcopy(fresh)
        opt.step(grads)
        fresh.step(grads)
        _same(opt, fresh, f"step {k}")


def test_bad_gradient_in_steady_state_changes_nothing() -> None:
    """A gradient refused at a steady step (wrong shape, overlapping a parameter) leaves every
    array and counter as it was, and the next good step continues as if it had not happened."""
    params = _model(np.float32)
    opt = fusedopt.Adam(params, lr=1e-2)
    twin = copy.deepcopy(opt)
    for k in range(3):
        opt.step(_grads(k, np.float32))
        twin.step(_grads(k, np.float32))
    before = snapshot(opt)
    for bad, exc in [(np.zeros((5, 4), np.float32), ValueError), (opt.params[0], ValueError)]:
        grads = _grads(3, np.float32)
        grads[1 if bad.shape == (5, 4) else 2] = bad if bad.shape == (5, 4) else opt.params[0][:17]
        with pytest.raises(exc, match="grads for parameter"):
            opt.step(grads)
        assert_unchanged(opt, before)
    opt.step(_grads(3, np.float32))
    twin.step(_grads(3, np.float32))
    _same(opt, twin, "after the refused steps")


def test_row_sparse_steps_are_never_replayed_as_dense() -> None:
    """A step whose gradients were row-sparse (here one row each: as many segments as
    parameters) is not a plan a dense step may reuse: its segments cover the touched rows only."""
    rng = np.random.default_rng(5)
    params = [rng.uniform(0.5, 2.0, (6, 4)).astype(np.float32) for _ in range(2)]
    opt = fusedopt.Adam(params, lr=1e-2)
    fresh = copy.deepcopy(opt)
    for k in range(6):
        if k < 3:
            grads: list = [fusedopt.RowSparse(np.array([k % 6]), rng.standard_normal((1, 4)).astype(np.float32))
                           for _ in range(2)]
        else:
            grads = [rng.standard_normal((6, 4)).astype(np.float32) for _ in range(2)]
        fresh = copy.deepcopy(fresh)
        opt.step(grads)
        fresh.step(grads)
        _same(opt, fresh, f"step {k}")


def test_parameter_strides_changed_in_place_are_noticed() -> None:
    """A parameter whose strides are set in place (its elements now in another order than its
    state's) is checked again before the step: refused, nothing changed. (Before parameters were
    stamped with their strides, the step went on pairing elements with the wrong state.)"""
    params = [np.arange(16, dtype=np.float32).reshape(4, 4) + 1]
    opt = fusedopt.Adam(params, lr=1e-2)
    g = np.ones((4, 4), np.float32)
    opt.step([g])
    opt.step([g])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (setting strides is deprecated)
        try:
            params[0].strides = (4, 16)  # the transpose, in the same buffer
        except AttributeError:
            pytest.skip("this NumPy no longer sets strides in place")
    before = snapshot(opt)
    with pytest.raises(ValueError, match=r"exp_avg for parameter 0: its memory layout \(strides\)"):
        opt.step([g])
    assert_unchanged(opt, before)


_STATE_CHANGES: dict[str, tuple[Callable[[np.ndarray], None], type, str]] = {
    "strides": (lambda a: setattr(a, "strides", (4, 16)), ValueError, r"its memory layout \(strides\)"),
    "dtype": (lambda a: setattr(a, "dtype", np.int32), TypeError, "dtype int32 is not supported"),
    "shape": (lambda a: setattr(a, "shape", (16,)), ValueError, "shape"),
    "read-only": (lambda a: setattr(a.flags, "writeable", False), ValueError, "read-only"),
}


@pytest.mark.parametrize("change", list(_STATE_CHANGES))
def test_state_arrays_changed_in_place_are_noticed(change: str) -> None:
    """Once `opt.state` was handed out, a state array changed in place (strides, dtype, shape or
    flags set on the same object, the same buffer) is checked again before the next step, as a
    replaced one is: refused with the construction's message, nothing written. (Before state
    arrays were stamped, only their identity and data pointer were compared, and the step wrote
    float32 values into an int32 view, a read-only array, or the transposed order.)"""
    params = [np.arange(16, dtype=np.float32).reshape(4, 4) + 1]
    opt = fusedopt.Adam(params, lr=1e-2)
    g = np.ones((4, 4), np.float32)
    opt.step([g])
    opt.step([g])
    apply, exc, message = _STATE_CHANGES[change]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (setting strides is deprecated)
        try:
            apply(opt.state[0]["exp_avg"])
        except AttributeError:
            pytest.skip(f"this NumPy no longer sets {change} in place")
    params_before, step_before = params[0].copy(), opt.state[0]["step"]
    stored = {name: v.tobytes() for name, v in opt.state[0].items() if isinstance(v, np.ndarray)}
    with pytest.raises(exc, match="exp_avg for parameter 0.*" + message):
        opt.step([g])
    assert_same_bits(params[0], params_before, "parameter")
    assert opt.state[0]["step"] == step_before and opt.step_count == 2
    for name, raw in stored.items():
        assert opt.state[0][name].tobytes() == raw, name


def test_gradients_unlike_their_parameter_are_checked_in_full(tmp_path: Any) -> None:
    """A steady step accepts a gradient at a glance when it is laid out exactly as its parameter
    (type, dtype object, flags, shape, strides); anything else gets every check: read-only,
    another dtype object of the same dtype, a numpy.memmap, a broadcast (read through a copy)
    are accepted and computed as a fresh plan computes them; another byte order or dtype is
    refused and changes nothing."""
    params = [np.linspace(0.5, 2.0, 40, dtype=np.float32)]
    opt = fusedopt.Adam(params, lr=1e-2)
    base = np.linspace(-1.0, 1.0, 40, dtype=np.float32)
    opt.step([base])
    read_only = base.copy()
    read_only.flags.writeable = False
    mapped = np.memmap(tmp_path / "g.bin", dtype=np.float32, mode="w+", shape=(40,))
    mapped[:] = base * 0.5
    accepted = [
        read_only,
        base.astype(np.dtype(np.float32, metadata={"origin": "test"})),
        mapped,
        np.broadcast_to(np.float32(0.25), (40,)),
        base * 2,
    ]
    for k, g in enumerate(accepted):
        fresh = copy.deepcopy(opt)
        opt.step([g])
        fresh.step([np.array(g)])
        _same(opt, fresh, f"gradient {k}")
    before = snapshot(opt)
    for g, exc in [(base.astype(base.dtype.newbyteorder(">")), ValueError), (base.astype(np.float64), TypeError)]:
        with pytest.raises(exc, match="grads for parameter 0"):
            opt.step([g])
        assert_unchanged(opt, before)
