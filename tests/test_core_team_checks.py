"""A steady step checks each parameter and its gradient in one pass, shared by the helper
threads over many arrays (Engine::steady_checks, register_optimizer.cpp): the same bits as a
fresh plan's full checks, and every refusal those make (a gradient of another shape, dtype or
kind, one sharing memory with a parameter or state array, a parameter or state array changed in
place) made the same way, nothing written; anything unusual (a missing gradient, another
layout, a replaced array) takes the full checks."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import assert_snapshot_equal, snapshot, using_threads

N = 300  # parameters: over the team's threshold (kTeamCheckMin = 256)
SHAPES = [((7,), (3, 4), (16,), (2, 3, 5))[k % 4] for k in range(N)]


def _params(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, s).astype(np.float32) for s in SHAPES]


def _grads(step: int) -> list[Any]:
    """New arrays every step (new addresses, as a training loop's)."""
    rng = np.random.default_rng(1000 + step)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _regions() -> int:
    return int(fusedopt.runtime_info()["parallel_regions"])


def test_team_checks_run_and_give_the_serial_bits() -> None:
    """At 2 threads every steady step is two parallel regions (the checks, the update); at 1
    thread none. Both end with the same bits, and equal a fresh plan (a deep copy) every step."""
    runs = {}
    for threads in (1, 2):
        with using_threads(threads, 0):
            opt = fusedopt.Adam(_params(), lr=1e-2, weight_decay=0.1, amsgrad=True)
            for t in range(2):
                opt.step(_grads(t))
            before = _regions()
            for t in range(2, 6):
                fresh = copy.deepcopy(opt)
                opt.step(_grads(t))
                fresh.step(_grads(t))
                assert_snapshot_equal(snapshot(opt), snapshot(fresh), f"{threads} threads, step {t}: ")
            regions = _regions() - before
        runs[threads] = snapshot(opt)
        # (each step: the checks and the update; each fresh copy builds its plan: the update only)
        assert regions == (12 if threads == 2 else 0), regions
    assert_snapshot_equal(runs[2], runs[1], "team checks vs serial: ")


def _shape(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = np.zeros(3, np.float32)
    return grads


def _dtype(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = grads[k].astype(np.float64)
    return grads


def _not_an_array(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = grads[k].tolist()
    return grads


def _a_parameter(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = opt.params[k]
    return grads


def _another_parameter(opt: Any, grads: list[Any], k: int) -> list[Any]:
    same_shape = next(j for j in range(N) if j != k and SHAPES[j] == SHAPES[k])
    grads[k] = opt.params[same_shape]
    return grads


def _state(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = opt.state[(k + 4) % N]["exp_avg_sq"]
    return grads


def _missing(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = None
    return grads


def _transposed(opt: Any, grads: list[Any], k: int) -> list[Any]:
    grads[k] = np.asfortranarray(grads[k])  # (read through a copy: another layout)
    return grads


def _param_reshaped(opt: Any, grads: list[Any], k: int) -> list[Any]:
    opt.params[k].shape = (1, -1)
    return grads


def _param_read_only(opt: Any, grads: list[Any], k: int) -> list[Any]:
    opt.params[k].flags.writeable = False
    return grads


def _param_replaced(opt: Any, grads: list[Any], k: int) -> list[Any]:
    opt.param_groups[0]["params"][k] = opt.params[k].copy()
    return grads


def _state_replaced(opt: Any, grads: list[Any], k: int) -> list[Any]:
    opt.state[k]["exp_avg"] = opt.state[k]["exp_avg"] * 2
    return grads


def _state_dtype_set(opt: Any, grads: list[Any], k: int) -> list[Any]:
    opt.state[k]["exp_avg"].dtype = np.int32
    return grads


CHANGES: dict[str, Callable[[Any, list[Any], int], list[Any]]] = {
    f.__name__.lstrip("_"): f
    for f in (_shape, _dtype, _not_an_array, _a_parameter, _another_parameter, _state, _missing, _transposed,
              _param_reshaped, _param_read_only, _param_replaced, _state_replaced, _state_dtype_set)
}


def _contents(opt: Any) -> tuple:
    """The bytes of every parameter and state array, and the counters (shapes aside: a change
    may reshape a parameter in place)."""
    state = tuple(sorted((k, n, v.tobytes() if isinstance(v, np.ndarray) else v)
                         for k, st in opt.state.items() for n, v in st.items()))
    return tuple(p.tobytes() for p in opt.params), state, opt.step_count


def _step(opt: Any, change: str, k: int) -> tuple[Any, tuple, tuple]:
    """(the exception's type and message, or None; the contents before; after the step)."""
    before = _contents(opt)  # (before the change: reading opt.state syncs its counters)
    grads = CHANGES[change](opt, _grads(3), k)
    try:
        opt.step(grads)
    except (TypeError, ValueError) as e:
        return (type(e), str(e)), before, _contents(opt)
    return None, before, _contents(opt)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("k", [0, 157, N - 1])
@pytest.mark.parametrize("change", list(CHANGES))
def test_the_steady_checks_refuse_and_accept_as_a_fresh_plan(change: str, k: int, threads: int) -> None:
    """The same change at parameter k of a steady optimizer (one-pass checks, on the team at 2
    threads) and of its deep copy (a fresh plan: every check in full): the same error with
    nothing written, or the same bits."""
    with using_threads(threads, 0), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opt = fusedopt.Adam(_params(), lr=1e-2, amsgrad=True)
        for t in range(3):
            opt.step(_grads(t))
        fresh = copy.deepcopy(opt)
        error, before, after = _step(opt, change, k)
        fresh_error, _, fresh_after = _step(fresh, change, k)
    assert error == fresh_error
    assert after == fresh_after, f"{change} at {k}"
    if error is not None:
        assert after == before, f"{change} at {k}: refused, yet something changed"
    expected_error = {"shape": ValueError, "dtype": TypeError, "not_an_array": TypeError, "a_parameter": ValueError,
                      "another_parameter": ValueError, "state": ValueError, "param_reshaped": ValueError,
                      "param_read_only": ValueError, "state_dtype_set": TypeError}
    assert (error[0] if error else None) is expected_error.get(change), error
