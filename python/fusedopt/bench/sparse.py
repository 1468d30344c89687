"""``--sparse``: SparseAdam on a 1M x 64 float32 embedding table with 1% of its rows touched
(10K distinct rows, given in random order), against what those rows alone cost (SparseAdam on a
10K x 64 table, every row touched) and a dense Adam step over the whole table. A row-sparse step
should cost about the touched rows, not the table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt

from .timing import Contender, measure

ROWS, WIDTH, TOUCHED = 1 << 20, 64, 10_000


def _sparse_adam(rows: int, indices: np.ndarray, grad_rows: np.ndarray) -> tuple[Callable[[], None], Any]:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((rows, WIDTH), dtype=np.float32)
    opt = fusedopt.SparseAdam([table], lr=1e-3)
    g = fusedopt.RowSparse(indices, grad_rows)
    return (lambda: opt.step(g)), (opt, table)


def _dense_adam(rows: int) -> tuple[Callable[[], None], Any]:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((rows, WIDTH), dtype=np.float32)
    grads = [rng.standard_normal((rows, WIDTH), dtype=np.float32)]
    opt = fusedopt.Adam([table], lr=1e-3)
    return (lambda: opt.step(grads)), (opt, table, grads)


def sparse_compare(cfg: dict[str, Any], tick: Callable[[], Any]) -> dict[str, Any]:
    """Seconds per step of each contender (medians), and the ratios that matter."""
    rng = np.random.default_rng(1)
    touched = rng.choice(ROWS, TOUCHED, replace=False)  # 1%, random order: scattered rows
    grad_rows = rng.standard_normal((TOUCHED, WIDTH), dtype=np.float32)
    contenders = []
    for name, (step, keep) in {
        "sparse_1M": _sparse_adam(ROWS, touched, grad_rows),
        "sparse_10K": _sparse_adam(TOUCHED, rng.permutation(TOUCHED), grad_rows),
        "dense_10K": _dense_adam(TOUCHED),
        "dense_1M": _dense_adam(ROWS),
    }.items():
        contenders.append(Contender(name, step, keep=keep))
    st = measure(contenders, cfg["repeats"], cfg["min_time"])
    tick()
    s = {name: st[name].median for name in st}
    return {"rows": ROWS, "width": WIDTH, "touched": TOUCHED, "seconds": s,
            "sparse_vs_touched": s["sparse_1M"] / s["sparse_10K"], "dense_vs_sparse": s["dense_1M"] / s["sparse_1M"],
            "others_cores": st["sparse_1M"].others}


def render(doc: dict[str, Any]) -> list[str]:
    s = doc["seconds"]
    return [
        f"row-sparse: SparseAdam on a {doc['rows']} x {doc['width']} float32 table, {doc['touched']} rows touched:",
        f"  sparse step, 1M table      {s['sparse_1M'] * 1e6:9.1f} us",
        f"  sparse step, 10K table     {s['sparse_10K'] * 1e6:9.1f} us  (the touched rows alone)",
        f"  dense Adam, 10K table      {s['dense_10K'] * 1e6:9.1f} us",
        f"  dense Adam, 1M table       {s['dense_1M'] * 1e6:9.1f} us",
        f"  1M sparse / touched rows alone: {doc['sparse_vs_touched']:.2f}x; dense 1M / sparse 1M: "
        f"{doc['dense_vs_sparse']:.0f}x",
        "",
    ]
