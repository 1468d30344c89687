"""Shared machinery of the torch-parity suite: tolerances, the implementations
to run (every SIMD target this CPU supports, plus the NumPy backend), the
trajectory comparison, and the largest-error report.

Tolerances: stated once, here, and used by every parity test
--------------------------------------------------------------------------
    float32: rtol = 1e-5,  atol = 1e-6
    float64: rtol = 1e-10, atol = 1e-12
    (a value passes when |fusedopt - torch| <= atol + rtol * |torch|)

Why not bitwise: torch.sqrt on CPU is not correctly rounded (MKL VML; about
17% of float32 and 1.3% of float64 inputs come out one ulp off), fusedopt
uses IEEE sqrt.  On top of that the baseline SIMD target and the NumPy
backend evaluate torch's fused multiply-adds (add with alpha, lerp, addcmul)
as a multiply then an add, one extra rounding each.  Everything else follows
torch's operation order with per-step scalars computed in double and rounded
once, so what remains is a few ulp per step that does not grow over 20 steps.

Why these numbers: a port with those properties measures at most a few 1e-6
relative in float32 (reference/optimizer-semantics.md section 12: about 3e-6
for a plain NumPy Adam after 50 steps) and about 1e-14 in float64, so rtol
leaves a margin of 2-4x (float32) and 1e3x (float64).  It still catches
semantic slips: eps inside instead of outside a sqrt, dampening on SGD's
first step, AMSGrad dividing by v instead of max(v), Adamax's eps outside the
max each fail 5-18 cases of their optimizer (mutation-tested).  Reorderings
that only change rounding (beta*m + (1-beta)*g for lerp) pass; they are the
business of the bitwise native-vs-NumPy-reference tests.  atol only takes over
near zero (moments of zero gradients, parameters crossing zero), where a
relative bound is meaningless: 1e-6 is 8 float32 ulp of 1 and 1e-12 is
1e-2 of the float64 rtol at 1, the scale of every quantity in these cases.

NAdam's mu_product is a float32 scalar in torch whatever the parameter dtype,
so it is compared with the float32 tolerance; fusedopt must round it exactly
as torch does, or the float64 parameters would miss their 1e-10.  Step
counts are compared exactly.

Never widen these to make a case pass: a failure is a bug in fusedopt (or in
this suite) until its cause is found.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from .cases import close, rel_err

TOLERANCES: dict[str, tuple[float, float]] = {  # dtype -> (rtol, atol)
    "float32": (1e-5, 1e-6),
    "float64": (1e-10, 1e-12),
}
# Learning rates and momenta set by schedulers are Python floats computed by
# the same recursive formulas as torch's (reference section 12: matching to
# 1e-12 is realistic; a closed form instead of torch's recursion differs by
# ~1e-16).  Upstream's own scheduler tests use atol=1e-5, far looser.
SCHEDULE_TOLERANCE: tuple[float, float] = (1e-12, 1e-15)  # (rtol, atol)

# Scalars torch keeps as float32 tensors whatever the parameter dtype.
SCALAR_TOLERANCE_DTYPE: dict[str, str] = {"mu_product": "float32", "eta": "float32", "mu": "float32"}


# ---------------------------------------------------------------------------
# Implementations under test
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Impl:
    backend: str  # "native" | "numpy"
    target: str | None  # SIMD target for the native backend

    @property
    def id(self) -> str:
        return f"native-{self.target}" if self.backend == "native" else self.backend


def _supported_targets() -> list[str]:
    try:
        import fusedopt
    except ImportError:  # the tests then fail on their own import with the real error
        return ["baseline"]
    return list(fusedopt.runtime_info()["supported_targets"])


IMPLS = [Impl("native", t) for t in _supported_targets()] + [Impl("numpy", None)]


@contextlib.contextmanager
def forced_target(name: str | None):
    """Run the native kernels of the given SIMD target (None: leave as is)."""
    if name is None:
        yield
        return
    import fusedopt

    before = fusedopt.runtime_info()["active_target"]
    fusedopt.set_target(name)
    try:
        yield
    finally:
        fusedopt.set_target(before)


@pytest.fixture(params=IMPLS, ids=lambda i: i.id)
def impl(request):
    """Run the test under each SIMD target (native backend) and the NumPy backend."""
    with forced_target(request.param.target):
        yield request.param


# (tests/conftest.py's ``target`` fixture runs a test under each SIMD target alone.)


# ---------------------------------------------------------------------------
# Largest errors seen (printed in the terminal summary)
# ---------------------------------------------------------------------------
_LOCK = threading.Lock()
_MAX_REL: dict[tuple[str, str], tuple[float, str]] = {}  # (suite, dtype) -> (err, where)


def record_error(suite: str, dtype: str, err: float, where: str) -> None:
    with _LOCK:
        if err > _MAX_REL.get((suite, dtype), (-1.0, ""))[0]:
            _MAX_REL[(suite, dtype)] = (err, where)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _MAX_REL:
        return
    tr = terminalreporter
    tr.section("torch parity: largest relative error per dtype")
    tr.write_line("(|got - torch| / max(|torch|, atol/rtol) over every compared value, passing or not)")
    for (suite, dtype), (err, where) in sorted(_MAX_REL.items()):
        rtol, atol = TOLERANCES[dtype]
        at = f"at {where}" if err > 0 else "(bit-identical everywhere)"
        tr.write_line(f"  {suite:<16} {dtype}: {err:.3g}  (rtol {rtol:g}, atol {atol:g})  {at}")


# ---------------------------------------------------------------------------
# Trajectory comparison
# ---------------------------------------------------------------------------
def _when(r: int) -> str:
    return "after construction" if r == 0 else f"after step {r}"


def _describe(got: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> str:
    g = np.asarray(got, dtype=np.float64).reshape(-1)
    f = np.asarray(ref, dtype=np.float64).reshape(-1)
    bad = ~np.isclose(g, f, rtol=rtol, atol=atol, equal_nan=True)
    idx = int(np.flatnonzero(bad)[0]) if bad.any() else 0
    with np.errstate(invalid="ignore"):
        diff = np.where(g == f, 0.0, np.abs(g - f))
    return (
        f"max abs err {diff.max() if g.size else 0:.3g}, "
        f"rel err {rel_err(g, f, rtol, atol):.3g}; {int(bad.sum())}/{g.size} elements out of tolerance, "
        f"first at flat index {idx}: fusedopt {g[idx]!r} vs torch {f[idx]!r}"
    )


def compare_trajectory(
    got: list[dict], ref: list[dict], dtype: str, label: str, suite: str, first_step: int = 0
) -> None:
    """Assert fusedopt's snapshots equal torch's: parameters and every state
    entry, after construction and after every step, first difference reported
    precisely.  Snapshot r is taken after step ``first_step + r`` (0: after
    construction).  Records the largest relative errors seen (per tolerance dtype)."""
    worst: dict[str, tuple[float, str]] = {}
    assert len(got) == len(ref), f"{label}: {len(got)} snapshots vs {len(ref)}"

    def flush():
        for dt, (err, where) in worst.items():
            record_error(suite, dt, err, where)

    def check(g: Any, f: Any, what: str, r: int, tol_dtype: str = dtype, exact_dtype: bool = True):
        rtol, atol = TOLERANCES[tol_dtype]
        g_arr = np.asarray(g)
        f_arr = np.asarray(f)
        if exact_dtype:
            assert g_arr.dtype == np.dtype(dtype), (
                f"{label} {_when(r)}: {what} has dtype {g_arr.dtype}, torch {dtype}"
            )
        assert g_arr.shape == f_arr.shape, f"{label} {_when(r)}: {what} has shape {g_arr.shape}, torch {f_arr.shape}"
        e = rel_err(g_arr, f_arr, rtol, atol)
        if e > worst.get(tol_dtype, (-1.0, ""))[0]:
            worst[tol_dtype] = (e, f"{label} {_when(r)} {what}")
        if not close(g_arr, f_arr, rtol, atol):
            flush()
            raise AssertionError(
                f"{label}: {what} differs from torch {_when(r)} (rtol {rtol:g}, atol {atol:g}): "
                + _describe(g_arr, f_arr, rtol, atol)
            )

    for r, (gs, fs) in enumerate(zip(got, ref), start=first_step):
        for i, (gp, fp) in enumerate(zip(gs["params"], fs["params"])):
            check(gp, fp, f"param {i}", r)
        g_keys = {k for k, v in gs["state"].items() if v}
        f_keys = set(fs["state"])
        assert g_keys == f_keys, (
            f"{label} {_when(r)}: parameters with state differ: fusedopt {sorted(g_keys, key=str)}, "
            f"torch {sorted(f_keys)}"
        )
        for i in sorted(f_keys):
            gst, fst = gs["state"][i], fs["state"][i]
            assert set(gst) == set(fst), (
                f"{label} {_when(r)}: state names of param {i} differ: fusedopt {sorted(gst)}, torch {sorted(fst)}"
            )
            for name, fv in fst.items():
                gv = gst[name]
                if name == "step":
                    assert isinstance(gv, (int, np.integer)) and not isinstance(gv, bool), (
                        f"{label} {_when(r)}: state[{i}]['step'] is {type(gv).__name__}, expected an int"
                    )
                    assert int(gv) == fv, f"{label} {_when(r)}: state[{i}]['step'] = {gv}, torch {fv}"
                elif name in SCALAR_TOLERANCE_DTYPE:
                    assert isinstance(gv, (float, np.floating)), (
                        f"{label} {_when(r)}: state[{i}][{name!r}] is {type(gv).__name__}, expected a float"
                    )
                    check(float(gv), fv, f"state[{i}][{name!r}]", r, SCALAR_TOLERANCE_DTYPE[name], exact_dtype=False)
                else:
                    check(gv, fv, f"state[{i}][{name!r}]", r)
    flush()
