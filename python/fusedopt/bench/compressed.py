"""``--compressed``: fewer bytes per parameter (docs/compressed_state.md, docs/low_precision.md).
Adam on one float32 array of 32M (4M with --quick) with float32, bfloat16 and int8 state, and on
bfloat16 parameters with float32 and bfloat16 state, each beside its own memory-traffic probe (the
same bytes read and written with trivial arithmetic, over the step's own arrays: bench/probe.py),
interleaved sample by sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt

from .probe import step_probe
from .timing import Contender, measure, settle

FULL, QUICK = 32 << 20, 4 << 20
# (row, parameter dtype, state_dtype, bytes per parameter: p read+written, g read, m and v read+written)
ROWS = (
    ("fp32 state", "float32", None, 4 + 4 + 4 + 2 * (4 + 4)),
    ("bf16 state", "float32", "bfloat16", 4 + 4 + 4 + 2 * (2 + 2)),
    ("int8 state", "float32", "int8", 4 + 4 + 4 + 2 * (1 + 1) + 2 * 8 / 256),  # + a float32 scale per 256
    ("bf16 params", "bfloat16", None, 2 + 2 + 2 + 2 * (4 + 4)),
    ("bf16 both", "bfloat16", "bfloat16", 2 + 2 + 2 + 2 * (2 + 2)),
)
# Targets (issue 15): time vs the fp32-state row, and vs the row's own probe.
VS_FP32 = {"bf16 state": 0.8, "int8 state": 0.65}
VS_PROBE = 1.15


def _dtype(name: Any) -> Any:
    if name == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(name)


def _stepper(opt: Any, grads: list[np.ndarray]) -> Callable[[], None]:
    return lambda: opt.step(grads)


def _contenders(n: int) -> list[Contender]:
    rng = np.random.default_rng(0)
    p32 = rng.standard_normal(n, dtype=np.float32)
    g32 = (rng.standard_normal(n, dtype=np.float32) * 1e-2).astype(np.float32)
    out = []
    for row, pdtype, state, _ in ROWS:
        p = p32.astype(_dtype(pdtype))
        g = g32.astype(_dtype(pdtype))
        opt: Any = getattr(fusedopt, "Adam")([p], lr=1e-4, state_dtype=state)
        step = _stepper(opt, [g])
        settle(step)  # (the state created, the thread count chosen, outside the timing)
        out.append(Contender(row, step, keep=(opt, p, g)))
        out.append(Contender(f"{row} probe", step_probe(opt, [p], 2, f"Adam {row}")))
    return out


def compressed_compare(cfg: dict[str, Any], tick: Callable[[], Any], quick: bool) -> dict[str, Any]:
    n = QUICK if quick else FULL
    st = measure(_contenders(n), cfg["repeats"], cfg["min_time"])
    tick()
    rows = []
    base = st["fp32 state"].median
    for row, pdtype, state, nbytes in ROWS:
        t, probe = st[row].median, st[f"{row} probe"].median
        rows.append({"row": row, "params": pdtype, "state_dtype": state or pdtype, "bytes": nbytes,
                     "seconds": t, "probe_seconds": probe, "vs_probe": t / probe, "vs_fp32": t / base})
    return {"n": n, "rows": rows, "others_cores": st["fp32 state"].others}


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's checks: each row within VS_PROBE of its probe; bf16/int8 state vs fp32 state."""
    out = []
    layout = f"{doc['n'] >> 20}M"
    for r in doc["rows"]:
        checks = [("compressed state: <= 1.15x its own probe", r["vs_probe"], VS_PROBE)]
        if r["row"] in VS_FP32:
            checks.append((f"compressed state: {r['row']} <= {VS_FP32[r['row']]}x fp32 state", r["vs_fp32"],
                           VS_FP32[r["row"]]))
        for target, value, limit in checks:
            out.append({"target": target, "case": f"Adam {r['row']}", "layout": layout, "value": value,
                        "limit": limit, "met": bool(value <= limit), "higher_is_better": False, "busy": False})
    return out


def render(doc: dict[str, Any]) -> list[str]:
    lines = [f"fewer bytes per parameter: Adam on {doc['n'] >> 20}M parameters (one array), ms per step:"]
    for r in doc["rows"]:
        lines.append(f"  {r['row']:<12} {r['bytes']:6.2f} B/param  {r['seconds'] * 1e3:8.2f} ms  probe "
                     f"{r['probe_seconds'] * 1e3:8.2f} ms  = {r['vs_probe']:.2f}x probe, {r['vs_fp32']:.2f}x fp32 state")
    lines.append("")
    return lines
