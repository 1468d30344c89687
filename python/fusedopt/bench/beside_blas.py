"""``--beside-blas``: the shape of a NumPy training loop. Each iteration runs a float32 matmul on
NumPy's BLAS (the forward and backward passes), then an Adam step on 1M float32 parameters;
the two are timed apart, with fusedopt at 1 thread and at the default threads, in alternating
blocks. The team is pinned (every default-thread step uses it, as when it wins its steps), so
the blocks show what its idle helper threads cost the caller's next BLAS call (the target:
nothing);
whether the threads speed up the step depends on the BLAS's own idle workers: OpenBLAS's spin
for about 0.1 s after every call, holding the cores, unless OPENBLAS_THREAD_TIMEOUT is small."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt
from fusedopt import _core

from .timing import CpuWatch

N = 1 << 20
MATRIX = 384  # a matmul of ~0.5 ms on 2 cores: comparable to the step
ITERATIONS = 10  # per block


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info  # type: ignore[import-untyped]
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    libs = [f"{i.get('internal_api')} {i.get('version')}, {i.get('num_threads')} threads"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return "; ".join(libs) or "none found"


def blas_compare(cfg: dict[str, Any], tick: Callable[[], Any]) -> dict[str, Any]:
    """Median seconds of the matmul and of the step, per thread count."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((MATRIX, MATRIX), dtype=np.float32)
    params = [rng.standard_normal(N, dtype=np.float32)]
    grads = [rng.standard_normal(N, dtype=np.float32) * np.float32(0.01)]
    opt = fusedopt.Adam(params, lr=1e-3)
    default = fusedopt.get_num_threads()
    counts = (1, default) if default > 1 else (1,)
    blocks: dict[int, dict[str, list[float]]] = {n: {"matmul": [], "step": []} for n in counts}
    watch = CpuWatch()
    _core._pin_threads(True)
    try:
        for _ in range(cfg["repeats"]):
            for n in counts:
                fusedopt.set_num_threads(n)
                matmul, step = [], []
                for _ in range(ITERATIONS):
                    t0 = time.perf_counter()
                    a @ a
                    t1 = time.perf_counter()
                    opt.step(grads)
                    t2 = time.perf_counter()
                    matmul.append(t1 - t0)
                    step.append(t2 - t1)
                blocks[n]["matmul"].append(statistics.median(matmul))
                blocks[n]["step"].append(statistics.median(step))
            tick()
    finally:
        _core._pin_threads(False)
        fusedopt.set_num_threads(default)
    others = watch.others()
    seconds = {str(n): {k: statistics.median(v) for k, v in b.items()} for n, b in blocks.items()}
    one, many = seconds["1"], seconds[str(default)]
    return {"params": N, "matrix": MATRIX, "threads": default, "blas": _blas(),
            "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"), "seconds": seconds,
            "matmul_ratio": many["matmul"] / one["matmul"], "step_ratio": many["step"] / one["step"],
            "others_cores": others}


def render(doc: dict[str, Any]) -> list[str]:
    s, t = doc["seconds"], doc["threads"]
    timeout = doc["openblas_thread_timeout"]
    lines = [f"beside BLAS: a {doc['matrix']} x {doc['matrix']} float32 matmul, then an Adam step on "
             f"{doc['params']} float32 parameters, each timed (us; the team pinned); BLAS: {doc['blas']}; "
             f"OPENBLAS_THREAD_TIMEOUT {timeout if timeout is not None else 'unset'}:"]
    for n, v in s.items():
        lines.append(f"  fusedopt {n} thread{'s' if n != '1' else ' '}   matmul {v['matmul'] * 1e6:8.1f}   "
                     f"step {v['step'] * 1e6:8.1f}")
    if t > 1:
        lines.append(f"  at {t} threads / 1: matmul {doc['matmul_ratio']:.2f}x, step {doc['step_ratio']:.2f}x")
    lines.append("")
    return lines
