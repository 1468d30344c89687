"""Runtime facts as a public API: which SIMD target runs, how many threads, how it was built."""

from __future__ import annotations

import os
import warnings
from typing import Any

from . import _core

KNOWN_TARGETS = ("baseline", "avx2", "avx512")


def runtime_info() -> dict[str, Any]:
    """Version, compiled and CPU-supported targets, the active one, OpenMP, threads, compiler, flags."""
    return _core.runtime_info()


def show_runtime() -> None:
    """Print :func:`runtime_info` for humans (like ``numpy.show_runtime``)."""
    info = runtime_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value) or "-"
        print(f"{key:<{width}}  {value}")


def set_target(name: str) -> str:
    """Force a SIMD target for every later step; returns the target now active.

    An unknown name raises ValueError. A known target that this build or CPU cannot run warns
    and falls back to the best supported one: never run instructions the CPU lacks.
    """
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
    """Upper bound on the OpenMP threads a step uses (results are identical at any count)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads a large step may use: OMP_NUM_THREADS or the core count unless set_num_threads was called."""
    return _core.get_num_threads()


def _apply_environment() -> None:
    """Honour FUSEDOPT_TARGET at import (an unknown name is an error, like set_target)."""
    forced = os.environ.get("FUSEDOPT_TARGET", "").strip()
    if forced:
        if forced not in KNOWN_TARGETS:
            raise ImportError(f"FUSEDOPT_TARGET must be one of {', '.join(KNOWN_TARGETS)}; got {forced!r}")
        set_target(forced)
