"""``--denormals``: every optimizer at 1M float32 parameters with gradients and state at 1e-42
(denormal in float32) against the same step on ordinary values, per SIMD target, on one
thread; flushed (the default) and kept (``set_flush_denormal(False)``). A denormal operand or result costs a
microcode assist on most x86 cores; flushed, the step should not notice them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt
from fusedopt import _core

from .cases import Case
from .timing import Contender, measure

N = 1 << 20
TINY = 1e-42


def _flush(on: bool) -> Callable[[], None]:
    return lambda: fusedopt.set_flush_denormal(on)


def _stepper(opt: Any, grads: list[np.ndarray]) -> Callable[[], None]:
    return lambda: opt.step(grads)


def _optimizer(case: Case, tiny: bool) -> tuple[Any, list[np.ndarray]]:
    """A stepped optimizer over one array of N; with `tiny`, its gradients and every state array
    hold the denormal TINY (the parameters stay ordinary)."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(N, dtype=np.float32)]
    grads = [np.full(N, TINY, np.float32) if tiny else rng.standard_normal(N, dtype=np.float32) * np.float32(0.1)]
    opt = getattr(fusedopt, case.cls)(params, **dict(case.kwargs))
    opt.step(grads)
    if tiny:
        for st in opt.state.values():
            for v in st.values():
                if isinstance(v, np.ndarray) and v.size == N:
                    v[...] = TINY
    return opt, grads


def denormal_compare(cases: list[Case], cfg: dict[str, Any], tick: Callable[[], Any]) -> dict[str, Any]:
    """Per case and target: (denormal step time / ordinary step time), flushed and kept. On one
    thread: the question is the arithmetic's cost, and each optimizer's own choice between
    threads (measured in epochs of 20 ms and more) would otherwise land differently on each."""
    targets = [t for t in ("baseline", "avx2", "avx512") if t in fusedopt.runtime_info()["supported_targets"]]
    saved_target, saved_flush = fusedopt.get_target(), fusedopt.get_flush_denormal()
    saved_threads = fusedopt.get_num_threads()
    fusedopt.set_num_threads(1)
    rows = []
    try:
        for case in cases:
            normal, g_normal = _optimizer(case, False)
            flushed, g_flushed = _optimizer(case, True)
            kept, g_kept = _optimizer(case, True)
            for target in targets:
                _core.set_target(target)
                # The kept contender's state stays denormal: TINY * beta + TINY * (1 - beta) ~ TINY.
                st = measure([
                    Contender("normal", _stepper(normal, g_normal), warmup_steps=case.warmup_steps),
                    Contender("flushed", _stepper(flushed, g_flushed)),
                    Contender("kept", _stepper(kept, g_kept), _flush(False), _flush(saved_flush)),
                ], cfg["repeats"], cfg["min_time"])
                rows.append({"case": case.key, "target": target, "normal_s": st["normal"].median,
                             "flushed": st["flushed"].median / st["normal"].median,
                             "kept": st["kept"].median / st["normal"].median, "others_cores": st["normal"].others})
            del normal, flushed, kept
            tick()
    finally:
        _core.set_target(saved_target)
        fusedopt.set_flush_denormal(saved_flush)
        fusedopt.set_num_threads(saved_threads)
    return {"params": N, "value": TINY, "targets": targets, "rows": rows}
