"""Runtime facts as a public API: which SIMD target runs, how many threads, how it was built."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from . import _core

KNOWN_TARGETS = ("baseline", "avx2", "avx512")


def runtime_info() -> dict[str, Any]:
    """Version, compiled and CPU-supported targets, the active one, OpenMP, threads, compiler, flags."""
    return _core.runtime_info()


def show_runtime() -> None:
    """Print :func:`runtime_info` for humans (like ``numpy.show_runtime``), and NumPy's BLAS."""
    info: dict[str, Any] = {**runtime_info(), "numpy_blas": _numpy_blas()}
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        print(f"{key:<{width}}  {value}")


def _numpy_blas() -> str:
    """NumPy's BLAS library and version; for OpenBLAS, whether its idle threads spin after each
    call (they do for ~0.1 s unless OPENBLAS_THREAD_TIMEOUT, read when NumPy loads OpenBLAS, is
    small), which keeps a step's helper threads off the cores in a training loop."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except KeyError:  # (a NumPy built without a BLAS)
        return "unknown"
    text = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    if "openblas" in text.lower():
        timeout = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
        text += (f" (OPENBLAS_THREAD_TIMEOUT={timeout})" if timeout else
                 " (its idle threads spin ~0.1 s after each call, holding the cores a step's threads "
                 "would use: OPENBLAS_THREAD_TIMEOUT=4 before NumPy is imported; docs/performance.md)")
    return text


def set_target(name: str) -> str:
    """Force a SIMD target for every later step; returns the target now active.

    An unknown name raises ValueError (anything but a str: TypeError). A known target that this
    build or CPU cannot run warns and falls back to the best supported one: never run
    instructions the CPU lacks.
    """
    if not isinstance(name, str):
        raise TypeError(f"target must be one of {', '.join(KNOWN_TARGETS)}; got {type(name).__name__}")
    if name not in KNOWN_TARGETS:
        raise ValueError(f"target must be one of {', '.join(KNOWN_TARGETS)}; got {name!r}")
    info = runtime_info()
    if name not in info["supported_targets"]:
        best = info["best_target"]
        why = "not compiled into this build" if name not in info["compiled_targets"] else "not supported by this CPU"
        warnings.warn(f"SIMD target {name!r} is {why}; using {best!r}", RuntimeWarning, stacklevel=2)
        name = best
    _core.set_target(name)
    return name


def get_target() -> str:
    """The SIMD target that runs the kernels now."""
    return _core.active_target()


def set_num_threads(n: int) -> None:
    """Threads a large step may use (results are identical at any count).

    Also sets the calling thread's OpenMP limit, so a later ``threadpoolctl.threadpool_limits``
    lowers it again and restores it on exit. Each optimizer times its steps on the team and on
    one thread and uses the faster (mostly), so on a machine where another process holds a core
    the default is never much slower than one thread.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):  # (a NumPy integer too)
        raise TypeError(f"n must be an int >= 1, got {type(n).__name__}")
    if not 1 <= n < 2**31:
        raise ValueError(f"n must be an int >= 1 (and below 2**31), got {int(n)!r:.80}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads a large step may use: set_num_threads's n (else OMP_NUM_THREADS or the core count),
    at most the calling thread's OpenMP limit (what threadpoolctl sets)."""
    return _core.get_num_threads()


def set_flush_denormal(on: bool) -> None:
    """Whether optimizer steps flush denormal numbers to zero (on by default), like
    ``torch.set_flush_denormal``.

    While a step's kernels run, every thread running them treats denormal inputs as zero and
    writes zero instead of a denormal result (x86 FTZ and DAZ; the caller's floating-point mode is
    restored after). Any value or intermediate below 1.2e-38 (float32) or 2.2e-308 (float64) then
    counts as 0: a gradient that small is no gradient, an update that small is lost, and a moment
    decaying towards zero (Adam's ``exp_avg`` after a unit stops receiving gradients) never
    creeps through the denormals, where every operation costs a microcode assist (steps 2x to
    300x slower, depending on the CPU). It drops to 0 where the kernel fuses the decay into one
    FMA (AVX2, AVX-512), and stops near 1e-37 where the decrement underflows first (baseline).
    With ``False`` the steps keep denormals and equal the NumPy reference bit for bit.
    The clipping and norm functions (``clip_grad_norm_``, ``get_total_norm``, ...) never flush.
    """
    if not isinstance(on, (bool, np.bool_)):
        raise TypeError(f"on must be a bool, got {type(on).__name__}")
    _core.set_flush_denormal(bool(on))


def get_flush_denormal() -> bool:
    """Whether optimizer steps flush denormal numbers to zero (see :func:`set_flush_denormal`)."""
    return _core.get_flush_denormal()


def _apply_environment() -> None:
    """Honour FUSEDOPT_TARGET at import (an unknown name is an error, like set_target)."""
    forced = os.environ.get("FUSEDOPT_TARGET", "").strip()
    if forced:
        if forced not in KNOWN_TARGETS:
            raise ImportError(f"FUSEDOPT_TARGET must be one of {', '.join(KNOWN_TARGETS)}; got {forced!r}")
        set_target(forced)
