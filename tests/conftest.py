"""Shared fixtures and helpers of the core suite (tests/test_core_*.py).

* ``target``: a fixture parametrized over every SIMD target this CPU supports; it makes the
  target active for the test and restores the previous one afterwards.
* ``using_target`` / ``using_threads``: the same as context managers (threads also restores
  the minimum parallel size).
* ``Pair``: two optimizers of one class and configuration, side by side on copies of the same
  parameters (by default the native kernels and the NumPy reference), stepped with the same
  gradients, compared bitwise (``assert_bitwise``) or to a per-element ulp bound
  (``assert_within_ulp``), and re-synchronised (``resync``: teacher forcing).
* ``snapshot`` / ``assert_snapshot_equal``: every parameter and every state entry of an
  optimizer (plus its counters), copied, and compared bit for bit.
* ``Armed`` / ``armed`` and the ``path`` fixture: an optimizer with two param groups and a
  twin, for proving that a rejected (or skipped) call wrote nothing, on both paths of a step:
  "steady" (the state never handed out: the engine's own counters) and "general" (``opt.state``
  read: every step re-reads the state dicts).
* ``check_ulp_bound``: the element-wise ulp bound used on the FMA targets.

Everything that compares "bitwise" compares the raw bytes, so -0.0 vs 0.0 and different NaN
payloads count as differences (``np.testing.assert_array_equal`` does not see those); on a
mismatch the assertion message comes from ``np.testing.assert_array_equal`` (or names the
first differing element when only the bits differ).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import fusedopt
import numpy as np
import pytest
from fusedopt import _core

SUPPORTED_TARGETS: list[str] = list(fusedopt.runtime_info()["supported_targets"])
FMA_TARGETS: list[str] = [t for t in SUPPORTED_TARGETS if t != "baseline"]
DTYPES = (np.float32, np.float64)

# Every optimizer class of the package, by name.
OPTIMIZERS: dict[str, type] = {
    name: getattr(fusedopt, name)
    for name in ("SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Lion")
    + ("Adadelta", "Rprop", "ASGD")
}
# Rules with per-array reductions (rule.hpp, ReduceInfo).
OPTIMIZERS.update({name: getattr(fusedopt, name) for name in ("Lamb", "LARS", "Adafactor")})

# One configuration per optimizer that switches on (nearly) every option at once, with
# learning rates small enough that parameters drawn in +-[0.5, 2] never come near zero over
# 50 steps (see test_core_parity.py for why that matters to the ulp bounds).
RICH_CONFIGS: dict[str, dict[str, Any]] = {
    "SGD": {"lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05, "maximize": True},
    "Adagrad": {"lr": 1e-2, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "weight_decay": 0.05, "maximize": True},
    "RMSprop": {"lr": 1e-3, "momentum": 0.9, "centered": True, "weight_decay": 0.05, "maximize": True},
    "Adam": {"lr": 1e-3, "amsgrad": True, "weight_decay": 0.05, "maximize": True},
    "AdamW": {"lr": 1e-3, "amsgrad": True, "weight_decay": 0.05, "maximize": True},
    "Adamax": {"lr": 1e-3, "weight_decay": 0.05, "maximize": True},
    "NAdam": {"lr": 1e-3, "weight_decay": 0.05, "momentum_decay": 2e-2, "decoupled_weight_decay": True, "maximize": True},
    "RAdam": {"lr": 1e-3, "weight_decay": 0.05, "decoupled_weight_decay": True, "maximize": True},
    "Lion": {"lr": 1e-3, "weight_decay": 0.05, "maximize": True},
    "Adadelta": {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.05, "maximize": True},
    "Lamb": {"lr": 1e-3, "weight_decay": 0.05, "weight_decouple": False, "maximize": True},
    "Rprop": {"lr": 1e-3, "etas": (0.4, 1.3), "step_sizes": (1e-5, 1e-2), "maximize": True},
    "ASGD": {"lr": 1e-3, "lambd": 1e-2, "alpha": 0.6, "t0": 5, "weight_decay": 0.05, "maximize": True},
    "LARS": {"lr": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05, "trust_coefficient": 0.02, "maximize": True},
    "Adafactor": {"lr": 1e-3, "beta2_decay": -0.5, "eps": (1e-3, 1e-3), "d": 1.5, "weight_decay": 0.05, "maximize": True},
}


# ---------------------------------------------------------------------------------------------
# Targets and threads
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def using_target(name: str) -> Iterator[str]:
    """Make SIMD target `name` active for the block (it must be supported), then restore."""
    before = fusedopt.get_target()
    fusedopt.set_target(name)
    try:
        assert fusedopt.get_target() == name
        yield name
    finally:
        fusedopt.set_target(before)


@contextlib.contextmanager
def flushing(on: bool) -> Iterator[None]:
    """Run the block with fusedopt's denormal flushing `on`, then restore the setting."""
    before = fusedopt.get_flush_denormal()
    fusedopt.set_flush_denormal(on)
    try:
        yield
    finally:
        fusedopt.set_flush_denormal(before)


@contextlib.contextmanager
def using_threads(n: int, min_parallel: int | None = None) -> Iterator[None]:
    """Run the block with `n` threads (and, if given, that minimum parallel size), then restore.
    The team is pinned: the back-off for busy machines (team.hpp) must not quietly turn a test
    of n threads into one of 1 thread."""
    threads_before = fusedopt.get_num_threads()
    min_before = _core.get_min_parallel_elements()
    fusedopt.set_num_threads(n)
    _core._pin_threads(True)
    if min_parallel is not None:
        _core.set_min_parallel_elements(min_parallel)
    try:
        yield
    finally:
        _core._pin_threads(False)
        fusedopt.set_num_threads(threads_before)
        _core.set_min_parallel_elements(min_before)


@pytest.fixture(params=SUPPORTED_TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each SIMD target this CPU supports, active for the test (restored afterwards)."""
    with using_target(request.param) as name:
        yield name


@pytest.fixture
def baseline_target() -> Iterator[str]:
    """The baseline target (no FMA: native == NumPy reference bit for bit), restored after."""
    with using_target("baseline") as name:
        yield name


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def low_dtype(name: str) -> Any:
    """The 16-bit dtype named "bfloat16" (ml_dtypes': the test is skipped without it) or "float16"."""
    return pytest.importorskip("ml_dtypes").bfloat16 if name == "bfloat16" else np.float16


def signed_uniform(rng: np.random.Generator, shape: Any, dtype: Any, low: float, high: float) -> np.ndarray:
    """Magnitudes uniform in [low, high), random signs, C-contiguous, rounded to `dtype`."""
    x = rng.uniform(low, high, size=shape) * rng.choice((-1.0, 1.0), size=shape)
    return np.array(x, dtype=np.float64).astype(dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)


def make_params(shapes: Sequence[Any], dtype: Any, seed: int) -> list[np.ndarray]:
    """Parameters with magnitudes in [0.5, 2): away from zero, so small steps never cross it."""
    rng = np.random.default_rng(seed)
    return [signed_uniform(rng, s, dtype, 0.5, 2.0) for s in shapes]


def make_grad_stream(shapes: Sequence[Any], dtype: Any, steps: int, seed: int) -> list[list[np.ndarray]]:
    """`steps` lists of gradients, magnitudes in [0.25, 2) with random signs (so momenta and
    moving averages change sign, and amsgrad / Adamax's running max switch). They are views into
    one buffer per step (C-contiguous, read only by the optimizers)."""
    rng = np.random.default_rng(seed)
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    total = sum(sizes)
    stream = []
    for _ in range(steps):
        flat = signed_uniform(rng, total, dtype, 0.25, 2.0)
        row, at = [], 0
        for s, n in zip(shapes, sizes):
            row.append(flat[at : at + n].reshape(s))
            at += n
        stream.append(row)
    return stream


def at_phase(a: np.ndarray, phase: int) -> np.ndarray:
    """A copy of `a` starting `phase` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 128, np.uint8)
    start = (phase - buf.ctypes.data) % 64
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % 64 == phase
    return out


def copies(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [a.copy() for a in arrays]


# ---------------------------------------------------------------------------------------------
# Snapshots and bitwise comparison
# ---------------------------------------------------------------------------------------------


def live_state(opt: Any) -> dict[Any, dict[str, Any]]:
    """`opt`'s state as new dicts holding the live arrays and the current counters, without
    handing out the optimizer's own dicts. Reading ``opt.state`` hands them out, and from then on
    every step re-reads them (docs/architecture.md, "Safety"); this leaves the optimizer on its
    own counters."""
    return opt._engine.snapshot(copy_arrays=False)[0]  # type: ignore[no-any-return]


def state_items(opt: Any, hand_out: bool = True) -> list[tuple[str, Any]]:
    """(label, value) for every state entry of `opt`, in a fixed order; read through
    ``opt.state`` (`hand_out`) or through `live_state`."""
    state = opt.state if hand_out else live_state(opt)
    out = []
    for key in sorted(state, key=repr):
        st = state[key]
        for name in sorted(st):
            out.append((f"state[{key!r}][{name!r}]", st[name]))
    return out


def state_arrays(opt: Any, hand_out: bool = True) -> list[tuple[str, np.ndarray]]:
    return [(label, v) for label, v in state_items(opt, hand_out) if isinstance(v, np.ndarray)]


def snapshot(opt: Any) -> dict[str, Any]:
    """A deep copy of everything a step may change: params, state (arrays and scalars), counters."""
    return {
        "params": [p.copy() for p in opt.params],
        "state": {k: {n: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for n, v in st.items()}
                  for k, st in opt.state.items()},
        "step_count": opt.step_count,
        "skipped_steps": getattr(opt, "skipped_steps", None),  # LBFGS and Muon skip no steps
    }


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (so -0.0 != 0.0, and NaN payloads count)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.size < 4096 or a.dtype.itemsize not in _UINT:
        return a.tobytes() == b.tobytes()
    u = _UINT[a.dtype.itemsize]
    return bool(np.array_equal(a.reshape(-1).view(u), b.reshape(-1).view(u)))


def assert_same_bits(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Bitwise equality (dtype, shape and every byte)."""
    got, expected = np.asarray(got), np.asarray(expected)
    if same_bits(got, expected):
        return
    assert got.dtype == expected.dtype, f"{what}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    np.testing.assert_array_equal(got, expected, err_msg=what, strict=True)
    # Equal as numbers but not as bits: -0.0 vs 0.0, or NaN payloads.
    g, e = got.reshape(-1), expected.reshape(-1)
    width = _UINT[got.dtype.itemsize]
    i = int(np.flatnonzero(g.view(width) != e.view(width))[0])
    raise AssertionError(f"{what}: equal values but different bits at flat index {i}: {g[i]!r} vs {e[i]!r}")


def assert_scalar_equal(got: Any, expected: Any, what: str) -> None:
    assert type(got) is type(expected), f"{what}: {type(got).__name__} != {type(expected).__name__}"
    if isinstance(got, float) and np.isnan(got) and np.isnan(expected):
        return
    assert got == expected, f"{what}: {got!r} != {expected!r}"


def assert_state_equal(got: dict, expected: dict, what: str = "") -> None:
    """Two optimizer state dicts ({key: {name: value}}) equal: same keys, names, types, bits."""
    assert set(got) == set(expected), f"{what}state keys {sorted(got, key=repr)} != {sorted(expected, key=repr)}"
    for key, e in expected.items():
        g = got[key]
        assert set(g) == set(e), f"{what}state[{key!r}] names {sorted(g)} != {sorted(e)}"
        for name in e:
            _assert_value_equal(g[name], e[name], f"{what}state[{key!r}][{name!r}]")


def _assert_value_equal(got: Any, expected: Any, label: str) -> None:
    """An array bit for bit, a list (LBFGS's history) item by item, a scalar by type and value."""
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), f"{label}: not an array"
        assert_same_bits(got, expected, label)
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{label}: {got!r:.80} != {expected!r:.80}"
        for i, (g, e) in enumerate(zip(got, expected)):
            _assert_value_equal(g, e, f"{label}[{i}]")
    else:
        assert_scalar_equal(got, expected, label)


def assert_snapshot_equal(got: dict, expected: dict, what: str = "") -> None:
    assert len(got["params"]) == len(expected["params"])
    for i, (g, e) in enumerate(zip(got["params"], expected["params"])):
        assert_same_bits(g, e, f"{what}param {i}")
    assert_state_equal(got["state"], expected["state"], what)
    assert got["step_count"] == expected["step_count"], f"{what}step_count"
    assert got["skipped_steps"] == expected["skipped_steps"], f"{what}skipped_steps"


def assert_unchanged(opt: Any, before: dict, what: str = "") -> None:
    """`opt` holds exactly what `snapshot(opt)` captured in `before`."""
    assert_snapshot_equal(snapshot(opt), before, what)


# ---------------------------------------------------------------------------------------------
# Two optimizers side by side
# ---------------------------------------------------------------------------------------------


class Pair:
    """Optimizer `cls(**config)` twice on copies of `params`: `a` (backend `backend_a`, default
    native) and `b` (default the NumPy reference). Step both with the same gradients and compare
    parameters and every state entry."""

    def __init__(
        self,
        cls: type,
        params: Sequence[np.ndarray],
        config: dict[str, Any] | None = None,
        backend_a: str = "native",
        backend_b: str = "numpy",
        **options: Any,
    ) -> None:
        config = dict(config or {})
        self.a = cls(copies(params), backend=backend_a, **config, **options)
        self.b = cls(copies(params), backend=backend_b, **config, **options)
        self._arrays: list[tuple[str, np.ndarray, np.ndarray]] = []

    def step(self, grads: Any, look: bool = True, hand_out: bool = False) -> None:
        """Step both. `look`: re-read the state afterwards (`refresh`); between looks the arrays
        from the last one, updated in place, are still compared. `hand_out`: read it through
        ``opt.state``, which hands the state dicts out: every later step re-reads them (the
        handed-out path) instead of keeping to the optimizer's own counters."""
        self.a.step(grads)
        self.b.step(grads)
        if look or hand_out or not self._arrays:
            self.refresh(hand_out)

    # -- pairs of corresponding arrays ----------------------------------------------------------

    def refresh(self, hand_out: bool = False) -> None:
        """Re-read every parameter and state entry (new entries appear on a parameter's first
        step), and compare the scalar entries ('step', 'mu_product') and counters exactly.
        `hand_out`: read through ``opt.state`` (see `step`)."""
        la, lb = state_items(self.a, hand_out), state_items(self.b, hand_out)
        assert [l for l, _ in la] == [l for l, _ in lb], (
            f"state entries differ: {[l for l, _ in la]} vs {[l for l, _ in lb]}"
        )
        self._arrays = [(f"param {i}", pa, pb) for i, (pa, pb) in enumerate(zip(self.a.params, self.b.params))]
        for (label, va), (_, vb) in zip(la, lb):
            if isinstance(va, np.ndarray):
                self._arrays.append((label, va, vb))
            else:
                assert_scalar_equal(va, vb, label)
        assert self.a.step_count == self.b.step_count, "step_count"
        assert self.a.skipped_steps == self.b.skipped_steps, "skipped_steps"

    def arrays(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(label, array of a, array of b) for every parameter and every state array, as of
        the last `refresh()` (the arrays are updated in place)."""
        if not self._arrays:
            self.refresh()
        return self._arrays

    def copy_b(self) -> dict[str, np.ndarray]:
        """Copies of b's arrays by label: the 'old' values before the next step."""
        return {label: vb.copy() for label, _, vb in self.arrays()}

    def assert_bitwise(self, where: str = "") -> None:
        for label, va, vb in self.arrays():
            if not same_bits(va, vb):
                assert_same_bits(va, vb, f"{where}{label}")

    def assert_within_ulp(
        self,
        ulps: float,
        old: dict[str, np.ndarray] | None = None,
        floor: dict[str, np.ndarray] | None = None,
        where: str = "",
    ) -> None:
        """Element-wise |a - b| <= ulps * spacing(S) in the arrays' dtype, NaN exactly where
        NaN, with S = max(|a|, |b|, |old|, |b - old|, |floor|): `old` (from `copy_b()` before
        the step) makes S cover both terms of every update new = c*old + delta (c <= 1) that
        the kernels round; `floor` (e.g. a running max) is added as is. Both by label; an
        array without an entry (state created by this step) gets 0."""
        items = self.arrays()
        if not items:
            return
        ravel = lambda xs: np.concatenate([np.asarray(x).reshape(-1) for x in xs])
        a = ravel([va for _, va, _ in items])
        b = ravel([vb for _, _, vb in items])
        f = np.zeros_like(b)
        if old is not None:
            o = ravel([old[label] if label in old else np.zeros_like(vb) for label, _, vb in items])
            f = np.maximum(np.abs(o), np.abs(b - o))
        if floor is not None:
            fl = ravel([floor[label] if label in floor else np.zeros_like(vb) for label, _, vb in items])
            f = np.maximum(f, np.abs(fl))
        check_ulp_bound(a, b, f, ulps, lambda i: _locate(items, i), where)

    def resync(self) -> None:
        """Teacher forcing: copy a's parameters and state arrays into b, so the next step of
        both starts from identical values and its difference is that step's alone."""
        for _, va, vb in self.arrays():
            vb[...] = va


def _locate(items: list[tuple[str, np.ndarray, np.ndarray]], flat_index: int) -> str:
    at = 0
    for label, va, _ in items:
        if flat_index < at + va.size:
            return f"{label}, flat index {flat_index - at}"
        at += va.size
    return f"flat index {flat_index}"


def check_ulp_bound(
    a: np.ndarray,
    b: np.ndarray,
    floor: np.ndarray,
    ulps: float,
    locate: Callable[[int], str] = str,
    where: str = "",
) -> None:
    """Assert |a - b| <= ulps * spacing(max(|a|, |b|, |floor|)) element-wise (spacing in the
    arrays' dtype); NaN must sit at the same places."""
    a, b, floor = (np.asarray(x).reshape(-1) for x in (a, b, floor))
    diff = np.abs(a - b)  # exact when a, b are within a factor 2 (Sterbenz), else huge anyway
    scale = np.maximum(np.abs(a), np.abs(b))
    np.maximum(scale, np.abs(floor), out=scale)
    limit = np.spacing(scale)
    limit *= ulps
    bad = ~(diff <= limit)  # NaN differences are "bad" here, sorted out below
    if not bad.any():
        return
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b):
        i = int(np.flatnonzero(nan_a != nan_b)[0])
        raise AssertionError(f"{where}NaN mismatch at {locate(i)}: {a[i]!r} vs {b[i]!r}")
    bad &= ~nan_a
    if not bad.any():
        return
    ratio = np.where(bad, diff.astype(np.float64) / limit.astype(np.float64) * ulps, 0.0)
    i = int(np.argmax(ratio))
    raise AssertionError(
        f"{where}{locate(i)}: {a[i]!r} vs {b[i]!r} differ by {ratio[i]:.3g} ulp (of {scale[i]!r}); "
        f"bound {ulps:g} ulp; {int(bad.sum())} elements out of bound"
    )


# ---------------------------------------------------------------------------------------------
# Checking that a call changes nothing
# ---------------------------------------------------------------------------------------------


ARMED_ARMED_SHAPES_G0 = [(7,), (3, 4)]
ARMED_ARMED_SHAPES_G1 = [(5,), (2, 3), (9,)]
ARMED_SHAPES = ARMED_ARMED_SHAPES_G0 + ARMED_ARMED_SHAPES_G1
ARMED_SPLIT = len(ARMED_ARMED_SHAPES_G0)


class Armed:
    """An optimizer (`opt`) with two param groups (shapes ARMED_SHAPES, the first ARMED_SPLIT
    in group 0; group 1 at half the lr), stepped twice, plus an identical `twin`, for checking
    that a rejected (or skipped) call changes nothing:

    * `live`: every parameter and state array, captured once after the first step (arrays are
      updated in place), compared bitwise with copies taken just before the call;
    * the twin never sees the call; afterwards both must be equal in every parameter, state
      entry and counter, and still step identically.

    Until `general()` both optimizers keep to their own counters (the state was never handed
    out); `general()` reads ``opt.state``, after which every step re-reads the state dicts."""

    def __init__(self, name: str, dtype: Any = np.float32, named: bool = False, **options: Any) -> None:
        self.name = name
        self.named = named
        cfg = dict(RICH_CONFIGS[name])
        params = make_params(ARMED_SHAPES, dtype, 1)
        self.stream = make_grad_stream(ARMED_SHAPES, dtype, 4, 2)

        def build() -> Any:
            ps = copies(params)
            if named:
                groups = [{"params": {f"w{i}": ps[i] for i in range(ARMED_SPLIT)}},
                          {"params": {f"w{i}": ps[i] for i in range(ARMED_SPLIT, len(ps))}, "lr": cfg["lr"] / 2}]
            else:
                groups = [{"params": ps[:ARMED_SPLIT]}, {"params": ps[ARMED_SPLIT:], "lr": cfg["lr"] / 2}]
            return OPTIMIZERS[name](groups, **cfg, **options)

        self.opt = build()
        self.twin = build()
        self.opt.step(self.grads(0))
        self.twin.step(self.grads(0))
        # live arrays, captured once without handing the state out; updated in place from now on
        self.live = list(self.opt.params) + [a for _, a in state_arrays(self.opt, hand_out=False)]
        self.opt.step(self.grads(1))
        self.twin.step(self.grads(1))

    def grads(self, k: int) -> Any:
        row = self.stream[k]
        if self.named:
            return {f"w{i}": g for i, g in enumerate(row)}
        return list(row)

    def general(self) -> None:
        """Hand the state of both out (read ``opt.state``): from now on every step re-reads the
        state dicts (the handed-out path)."""
        _ = self.opt.state
        _ = self.twin.state

    def assert_rejected(self, bad: Any, exc: type[BaseException], match: str,
                        call: Callable[[Any], Any] | None = None) -> pytest.ExceptionInfo:
        """`call(bad)` (default: opt.step) raises `exc` matching `match` and changes nothing."""
        with self._unchanged(bad, skipped=0), pytest.raises(exc, match=match) as info:
            (call or self.opt.step)(bad)
        return info

    def assert_skipped(self, bad: Any) -> None:
        """opt.step(bad) returns normally, counts one skipped step, and changes nothing else."""
        with self._unchanged(bad, skipped=1):
            self.opt.step(bad)

    @contextlib.contextmanager
    def _unchanged(self, bad: Any, skipped: int) -> Iterator[None]:
        before = [a.copy() for a in self.live]
        grad_copies = _grad_copies(bad)
        yield
        for i, (a, b) in enumerate(zip(self.live, before)):
            assert_same_bits(a, b, f"live array {i} after the call")
        for i, (g, c) in enumerate(zip(_grad_list(bad), grad_copies)):
            if c is not None:
                assert_same_bits(g, c, f"grad {i} after the call")
        assert self.opt.skipped_steps == self.twin.skipped_steps + skipped
        self.twin.skipped_steps = self.opt.skipped_steps
        self.assert_same_as_twin("after the call: ")
        # and both still work, identically
        self.opt.step(self.grads(2))
        self.twin.step(self.grads(2))
        self.assert_same_as_twin("after the next good step: ")

    def assert_same_as_twin(self, what: str) -> None:
        assert_snapshot_equal(snapshot(self.opt), snapshot(self.twin), what)
        for g, t in zip(self.opt.param_groups, self.twin.param_groups):
            assert {k: v for k, v in g.items() if k != "params"} == {k: v for k, v in t.items() if k != "params"}


def _grad_list(grads: Any) -> list:
    if isinstance(grads, dict):
        return list(grads.values())
    if isinstance(grads, np.ndarray):
        return [grads]
    if isinstance(grads, (list, tuple)):
        return list(grads)
    return []


def _grad_copies(grads: Any) -> list:
    return [g.copy() if isinstance(g, np.ndarray) else None for g in _grad_list(grads)]


PATHS = ["steady", "general"]


@pytest.fixture(params=PATHS)
def path(request: pytest.FixtureRequest) -> str:
    """The optimizer path a checked call meets: 'steady' or 'general' (see Armed)."""
    return request.param


def armed(name: str, path: str, **kw: Any) -> Armed:
    a = Armed(name, **kw)
    if path == "general":
        a.general()
    return a
