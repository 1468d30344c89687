"""Turning timings into the report: derived figures per row, the targets, the text and Markdown
tables (at most 100 columns, with a legend), JSON, and the log-log plot."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from . import beside_blas, compressed, sparse
from .cases import CASES, LAYOUTS, TORCH_FUSED_TARGETS

NaN = math.nan


def _isnan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))

# The targets (issues 8 and 11; float32, one run).
PROBE_LIMIT_LARGE = 1.10      # 32M: native / probe
PROBE_LIMIT_MID = 1.25        # 256K, 1M: native / probe
ADAM_VS_TORCH_FUSED = 2.0     # 256K, 1M: torch fused / native, Adam
VS_NUMPY = 15.0               # 256K, 1M: numpy / native, every optimizer
SMALL_VS_NUMPY = 2.0          # 1 element, 4K, 4 arrays: numpy / native (the step's fixed cost)
MANY_ARRAYS_LIMIT = 1.1       # 1000 x 1000: ns/param vs one 1M array
ARENA_LIMIT = 1.1             # flat arena: ns/param vs one 1M array
THREAD_TOLERANCE = 1.05       # "no slowdown from threading": 2 threads <= 1.05 x 1 thread (noise)
LOADED_THREAD_LIMIT = 1.15    # with a busy process beside it: default threads <= 1.15 x 1 thread
LOADED_CASES = ("SGD+mom", "Adam")
LOADED_LAYOUTS = ("64K", "256K", "1M", "32M")
DENORMAL_LIMIT = 1.5          # flushed: a step on denormal values <= 1.5 x one on ordinary values
BESIDE_BLAS_LIMIT = 1.1       # a matmul after default-thread steps <= 1.1 x after 1-thread steps
BUSY = 0.15                   # a row measured while other processes used more cores than this is marked *


def _ns(seconds: float | None, n: int) -> float:
    return NaN if seconds is None else seconds * 1e9 / n


def _num(x: Any) -> float:
    return NaN if x is None else float(x)


def _ratio(a: float, b: float) -> float:
    if a is None or _isnan(b) or b == 0:
        return NaN
    return a / b


def derive(r: Mapping[str, Any], min_parallel: int = 0) -> dict[str, Any]:
    """Per-row figures: ns per parameter of every contender, ratios, GB/s. Below `min_parallel`
    parameters a step never uses threads: no thread speed-up is reported."""
    n = r["params"]
    t = r["times"]
    d = {k: v for k, v in r.items() if k not in ("times", "stats")}
    d["stats"] = r.get("stats", {})
    for name in ("native", "native_1t", "probe", "numpy", "torch_loop", "torch_fused"):
        d[f"{name}_ns"] = _ns(t.get(name), n)
    d["step_us"] = _num(t.get("native")) * 1e6
    d["vs_probe"] = _ratio(t.get("native"), t.get("probe"))
    d["gbps"] = _ratio(r["bytes_per_param"], d["native_ns"])
    d["probe_gbps"] = _ratio(r["bytes_per_param"], d["probe_ns"])
    d["thread_speedup"] = _ratio(t.get("native_1t"), t.get("native")) if n >= min_parallel else NaN
    d["x_numpy"] = _ratio(t.get("numpy"), t.get("native"))
    d["x_torch_loop"] = _ratio(t.get("torch_loop"), t.get("native"))
    d["x_torch_fused"] = _ratio(t.get("torch_fused"), t.get("native"))
    d["native_one_array_ns"] = _ns(t.get("native_one_array"), n)
    d["vs_one_array"] = _ratio(t.get("native"), t.get("native_one_array"))
    arrays = int(r.get("arrays", 1))
    d["per_extra_array_ns"] = ((_num(t.get("native")) - _num(t.get("native_one_array"))) / (arrays - 1) * 1e9
                               if arrays > 1 else NaN)
    st = r.get("stats", {}).get("native", {})
    d["busy"] = _num(st.get("others_cores"))  # cores other processes used during the native samples
    d["attempts"] = st.get("attempts", 1)
    return d


def _find(rows: Iterable[Mapping[str, Any]], case: str, layout: str) -> Mapping[str, Any] | None:
    for r in rows:
        if r["case"] == case and r["layout"] == layout:
            return r
    return None


def targets(rows: list[dict[str, Any]], loaded: bool = False, denormals: Mapping[str, Any] | None = None,
            blas: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every check that the run has figures for: one entry per (target, row). A run --loaded
    checks the threads against the load instead of against noise."""
    out: list[dict[str, Any]] = []

    def add(target: str, case: str, layout: str, value: float, limit: float, higher_is_better: bool) -> None:
        if _isnan(value):
            return
        ok = value >= limit if higher_is_better else value <= limit
        out.append({"target": target, "case": case, "layout": layout, "value": value, "limit": limit,
                    "met": bool(ok), "higher_is_better": higher_is_better, "busy": busy})

    for r in rows:
        if r["dtype"] != "float32":
            continue
        c, lay = r["case"], r["layout"]
        busy = bool(r.get("busy", 0) > BUSY)
        if lay == "32M":
            add("32M: native <= 1.10x probe", c, lay, r["vs_probe"], PROBE_LIMIT_LARGE, False)
            if c in TORCH_FUSED_TARGETS:
                add("32M: native <= torch fused (time ratio)", c, lay,
                    _ratio(r["native_ns"], r["torch_fused_ns"]), 1.0, False)
        if lay in ("1", "4K", "4 arrays"):
            add("1 element/4K/4 arrays: >= 2x faster than NumPy reference", c, lay, r["x_numpy"], SMALL_VS_NUMPY, True)
        if lay in ("256K", "1M"):
            add("256K/1M: native <= 1.25x probe", c, lay, r["vs_probe"], PROBE_LIMIT_MID, False)
            add("256K/1M: >= 15x faster than NumPy reference", c, lay, r["x_numpy"], VS_NUMPY, True)
            if c == "Adam":
                add("256K/1M: Adam >= 2x faster than torch fused", c, lay, r["x_torch_fused"],
                    ADAM_VS_TORCH_FUSED, True)
        if lay in ("1000x1000", "arena 1000x1000"):
            one = _find(rows, c, "1M")
            v = r["vs_one_array"]  # interleaved with a step on one array of as many parameters
            if _isnan(v) and one is not None:
                v = _ratio(r["native_ns"], one["native_ns"])
            if not _isnan(v):
                if lay == "1000x1000":
                    add("1000 arrays of 1000: <= 1.1x one array of as many params", c, lay, v, MANY_ARRAYS_LIMIT, False)
                else:
                    add("flat arena: <= 1.1x one array of as many params", c, lay, v, ARENA_LIMIT, False)
        if not _isnan(r["thread_speedup"]):
            if not loaded:
                add("threads: no slowdown (2t <= 1.05 x 1t)", c, lay,
                    _ratio(r["native_ns"], r["native_1t_ns"]), THREAD_TOLERANCE, False)
            elif c in LOADED_CASES and lay in LOADED_LAYOUTS:
                add("loaded: default threads <= 1.15 x 1 thread", c, lay,
                    _ratio(r["native_ns"], r["native_1t_ns"]), LOADED_THREAD_LIMIT, False)
    busy = False
    for d in (denormals or {}).get("rows", []):
        busy = bool(d.get("others_cores", 0) > BUSY)
        add("denormals (1e-42), flushed: <= 1.5 x ordinary values", d["case"], d["target"], d["flushed"],
            DENORMAL_LIMIT, False)
    if blas and blas["threads"] > 1:
        busy = bool(blas.get("others_cores", 0) > BUSY)
        add("beside BLAS: matmul after default-thread steps <= 1.1 x after 1-thread steps", "Adam", "1M",
            blas["matmul_ratio"], BESIDE_BLAS_LIMIT, False)
    return out


def summarize(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, dict[str, Any]] = {}
    for chk in checks:
        s = by.setdefault(chk["target"], {"target": chk["target"], "met": 0, "total": 0, "missed": []})
        s["total"] += 1
        if chk["met"]:
            s["met"] += 1
        else:
            s["missed"].append(f"{chk['case']} {chk['layout']} ({chk['value']:.3g}){'*' if chk.get('busy') else ''}")
    return list(by.values())


def per_array_overhead(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """(step time of 1000 arrays - step time of the same elements as one arena buffer) / 999, in
    ns, with a noise half-width from the two interquartile ranges."""
    out = []
    for r in rows:
        if r["layout"] != "1000x1000":
            continue
        flat = _find(rows, r["case"], "arena 1000x1000")
        if flat is None:
            continue
        entry: dict[str, Any] = {"case": r["case"]}
        for name in ("native", "torch_loop", "torch_fused"):  # not NumPy: its big temporaries page-fault
            a, b = r["times"].get(name), flat["times"].get(name)
            if a is None or b is None:
                entry[name], entry[f"{name}_noise"] = NaN, NaN
                continue
            spread = [_num(x.get("stats", {}).get(name, {}).get("iqr_rel")) * t for x, t in ((r, a), (flat, b))]
            entry[name] = (a - b) / (r["arrays"] - 1) * 1e9
            entry[f"{name}_noise"] = NaN if any(map(_isnan, spread)) else sum(spread) / 2 / (r["arrays"] - 1) * 1e9
        out.append(entry)
    return out


EXTRAS = ("threshold_sweep", "simd_compare", "memory", "denormals", "beside_blas", "sparse", "muon", "compressed")


def rebuild(saved: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a run saved with --json (its rows keep the raw times)."""
    return build(saved["meta"], [dict(r) for r in saved["rows"]], {k: saved[k] for k in EXTRAS if k in saved})


def build(meta: Mapping[str, Any], results: list[dict[str, Any]], extras: Mapping[str, Any]) -> dict[str, Any]:
    rows = [derive(r, int(meta.get("min_parallel_elements", 0))) for r in results]
    for r, raw in zip(rows, results):
        r["times"] = raw["times"]
    checks = targets(rows, bool(meta.get("loaded")), extras.get("denormals"), extras.get("beside_blas"))
    if extras.get("compressed"):
        checks += compressed.targets(extras["compressed"])
    return {"meta": dict(meta), "rows": rows, "targets": checks, "target_summary": summarize(checks),
            "per_array_overhead_ns": per_array_overhead(rows), **dict(extras)}


# ---- formatting -----------------------------------------------------------------------------

def _f(x: float | None, digits: int = 3) -> str:
    if x is None or _isnan(x):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def _x(x: float | None) -> str:
    return "-" if _isnan(x) else f"{_f(x)}x"


def _pct(x: float | None) -> str:
    return "-" if x is None or _isnan(x) else f"{100 * x:.0f}%"


WIDTH = 100  # the text report fits a terminal of this many columns


def _busy(x: float) -> str:
    return "-" if _isnan(x) else f"{x:.2f}{'*' if x > BUSY else ''}"


# (header, key of the derived row, formatter, legend). A column whose values are all missing is
# left out, with its legend line.
COLUMNS: tuple[tuple[str, str, Any, str], ...] = (
    ("layout", "layout", str, "the parameters: one array of that many float32 elements, or as named"),
    ("optimizer", "case", str, "+mom: momentum, +ams: amsgrad, +c+m: centered with momentum, +clip: "
                               "max_grad_norm"),
    ("ns/p", "native_ns", _f, "fusedopt's step time per parameter, default threads (median of samples)"),
    ("us/step", "step_us", _f, "the same per step, in microseconds"),
    ("limit", "vs_probe", _pct, "step time / the memory probe's: a loop that reads the gradient and reads and "
                                "writes the parameter and state arrays once, doing no arithmetic, the "
                                "fastest any step over those arrays can be (100%: at the memory limit)"),
    ("GB/s", "gbps", _f, "bytes the step reads and writes per second"),
    ("threads", "thread_speedup", _x, "1-thread time / default-threads time (above 1x: the threads help; "
                                      "-: a step this small always runs on one thread)"),
    ("NumPy", "x_numpy", _x, "speedup over the same update written in NumPy (fusedopt.reference)"),
    ("torch", "x_torch_loop", _x, "speedup over torch.optim's for-loop step on the same arrays"),
    ("fused", "x_torch_fused", _x, "speedup over torch.optim's fused=True step"),
    ("busy", "busy", _busy, f"cores other processes used meanwhile (*: over {BUSY}, figures disturbed)"),
)


def _columns(doc: Mapping[str, Any]) -> list[tuple[str, str, Any, str]]:
    return [c for c in COLUMNS if c[1] in ("layout", "case")
            or any(not _isnan(r.get(c[1])) for r in doc["rows"])]


def table_rows(doc: Mapping[str, Any]) -> list[list[str]]:
    return [[fmt(r[key]) for _, key, fmt, _ in _columns(doc)] for r in doc["rows"]]


def _wrap(line: str, indent: str = "  ") -> list[str]:
    if len(line) <= WIDTH:
        return [line]
    return textwrap.wrap(line, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def _stamp(meta: Mapping[str, Any]) -> list[str]:
    la = meta.get("loadavg_before")
    lb = meta.get("loadavg_after")
    lines = [
        (f"fusedopt {meta['fusedopt']}, SIMD target {meta['target']}, {meta['threads']} threads; "
         f"numpy {meta['numpy']}; torch {meta['torch'] or 'not used'}"),
        f"{meta['machine']}, {meta['cpus']} CPUs; {meta['mode']} run, {meta['date']}, {meta['seconds']:.0f} s; "
        f"samples: {meta['config']['repeats']} fusedopt, {meta['config']['repeats_torch']} torch, "
        f"{meta['config']['repeats_numpy']} NumPy, >= {meta['config']['min_time'] * 1e3:g} ms each"
        + (f"; load average {la[0]:.2f} -> {lb[0]:.2f}" if la and lb else ""),
    ]
    lines += [f"note: {n}" for n in meta.get("notes", [])]
    return [w for line in lines for w in _wrap(line, "      ")]


def _legend(doc: Mapping[str, Any]) -> list[str]:
    cols = _columns(doc)
    width = max(len(c[0]) for c in cols)
    return [w for h, _, _, text in cols[2:] for w in _wrap(f"  {h:<{width}}  {text}", " " * (width + 4))]


def text(doc: Mapping[str, Any]) -> str:
    head = [c[0] for c in _columns(doc)]
    body = table_rows(doc)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    lines = _stamp(doc["meta"])
    lines.append("")
    lines.append("  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    prev = None
    for row in body:
        if prev is not None and row[0] != prev:
            lines.append("")
        prev = row[0]
        lines.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    lines.append("")
    lines += _legend(doc)
    lines.append("")
    lines += [w for line in _extras_text(doc) for w in _wrap(line, "    ")]
    lines.append("targets:")
    for s in doc["target_summary"]:
        mark = "MET " if s["met"] == s["total"] else "MISS"
        miss = "" if not s["missed"] else "; missed: " + ", ".join(s["missed"][:8]) + (" ..." if len(s["missed"]) > 8 else "")
        lines += _wrap(f"  [{mark}] {s['target']}: {s['met']}/{s['total']}{miss}", "         ")
    lines += [w for line in disturbance(doc) for w in _wrap(line, "      ")]
    return "\n".join(lines)


def disturbance(doc: Mapping[str, Any]) -> list[str]:
    """What to make of a run that other processes disturbed (nothing when none did)."""
    meta = doc["meta"]
    busy = [r["busy"] for r in doc["rows"] if not _isnan(r["busy"])]
    hit = [b for b in busy if b > BUSY]
    if meta.get("loaded") or not hit:
        return []
    return [
        "",
        f"note: other processes kept the CPUs busy during {len(hit)} of {len(busy)} rows (marked *, up to "
        f"{max(hit):.2f} cores). Each optimizer then runs its steps on one thread while helper threads would "
        "wait for a core, so the threaded columns show this machine's load, not the code's speed. For "
        "figures of the code, rerun on a quiet machine (--wait-quiet 60 waits for one); to see fusedopt "
        "under load on purpose, use --loaded.",
    ]


def _overhead(value: float, noise: float) -> str:
    """An overhead and its noise; one too small to tell from zero says so instead of going negative."""
    if _isnan(noise):
        return _f(value) if value > 0 else "~0"
    if value + noise <= 0:
        return "~0"
    if value - noise <= 0:
        return f"<{_f(value + noise)}"
    return f"{_f(value)}+-{_f(noise, 2)}"


def _extras_text(doc: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    many = [r for r in doc["rows"] if not _isnan(r.get("vs_one_array")) and r.get("arrays", 1) > 1]
    if many:
        lines.append("many arrays vs one array of as many parameters (native, interleaved), time ratio "
                     "(ns per extra array):")
        by_case: dict[str, dict[str, tuple[float, float]]] = {}
        for r in many:
            by_case.setdefault(r["case"], {})[r["layout"]] = (r["vs_one_array"], r.get("per_extra_array_ns", NaN))
        for c, v in by_case.items():
            lines.append(f"  {c:<12} " + "  ".join(f"{k} {_x(x)} ({_f(ns)})" for k, (x, ns) in v.items()))
        lines.append("")
    pa = doc.get("per_array_overhead_ns") or []
    if pa:
        lines.append("cost of each extra array, ns ((1000 arrays of 1000 - one buffer of 1M) / 999, "
                     "+- the samples' spread):")
        for e in pa:
            parts = [f"{label} {_overhead(e[name], e.get(name + '_noise', NaN))}"
                     for label, name in (("fusedopt", "native"), ("torch", "torch_loop"), ("fused", "torch_fused"))
                     if not _isnan(e[name])]
            lines.append(f"  {e['case']:<12} " + "  ".join(parts))
        lines.append("")
    ts = doc.get("threshold_sweep")
    if ts:
        lines.append(f"serial vs parallel ({ts['threads']} threads) native step, ns/param "
                     f"(default threshold {ts['default']}):")
        for r in ts["rows"]:
            lines.append(f"  {r['case']:<8} {r['params']:>8}  serial {_f(_ns(r['serial_s'], r['params']))}  "
                         f"parallel {_f(_ns(r['parallel_s'], r['params']))}  speedup {_x(r['speedup'])}")
        lines.append("  best threshold (smallest size from which parallel wins at every larger size): " +
                     ", ".join(f"{k} {v}" for k, v in ts["best"].items()))
        lines.append("")
    sc = doc.get("simd_compare")
    if sc:
        lines.append("SIMD targets, native ns/param: " + ", ".join(sc["targets"]))
        for r in sc["rows"]:
            lines.append(f"  {r['case']:<8} {r['layout']:<5} " +
                         "  ".join(f"{t} {_f(_ns(r[t], r['params']))}" for t in sc["targets"]))
        lines.append("")
    dn = doc.get("denormals")
    if dn:
        lines.append(f"denormals: {dn['params']} float32 parameters, gradients and state at {dn['value']:g}, "
                     "step time / the same step on ordinary values, 1 thread (flushed: the default; kept: "
                     "set_flush_denormal(False)):")
        for r in dn["rows"]:
            lines.append(f"  {r['case']:<12} {r['target']:<8} ordinary {r['normal_s'] * 1e6:8.1f} us  "
                         f"flushed {_x(r['flushed'])}  kept {_x(r['kept'])}")
        lines.append("")
    if doc.get("beside_blas"):
        lines += beside_blas.render(doc["beside_blas"])
    if doc.get("sparse"):
        lines += sparse.render(doc["sparse"])
    if doc.get("compressed"):
        lines += compressed.render(doc["compressed"])
    mu = doc.get("muon")
    if mu:
        lines.append("Muon, ms per step of one float32 matrix (5 Newton-Schulz iterations):")
        for r in mu["rows"]:
            cols = [f"{k} {r[k] * 1e3:8.2f}" for k in ("bfloat16", "float32", "torch") if k in r]
            lines.append(f"  {r['shape'][0]}x{r['shape'][1]:<6} " + "  ".join(cols))
        lines.append("")
    mem = doc.get("memory")
    if mem:
        lines.append("memory over 1000 native steps (after warm-up):")
        for k, m in mem.items():
            lines.append(f"  {k:<8} tracemalloc growth {m['traced_growth_bytes']} B, peak above start "
                         f"{m['traced_peak_above_start_bytes']} B; RSS growth {m['rss_growth_bytes'] // 1024} KiB "
                         f"(max {m['rss_max_growth_bytes'] // 1024} KiB)")
        lines.append("")
    return lines


def markdown(doc: Mapping[str, Any]) -> str:
    head = [c[0] for c in _columns(doc)]
    lines = ["```", *_stamp(doc["meta"]), "```", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    for row in table_rows(doc):
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "```", *_legend(doc), "```", ""]
    lines.append("| target | met | missed (value) |")
    lines.append("|---|---|---|")
    for s in doc["target_summary"]:
        lines.append(f"| {s['target']} | {s['met']}/{s['total']} | {', '.join(s['missed']) or '-'} |")
    lines.append("")
    extra = _extras_text(doc)
    if extra:
        lines += ["```", *extra, "```", ""]
    return "\n".join(lines)


def write_json(doc: Mapping[str, Any], path: str) -> None:
    def clean(o: Any) -> Any:
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o

    with open(path, "w") as f:
        json.dump(clean(doc), f, indent=1)


def plot(doc: Mapping[str, Any], path: str) -> str | None:
    """Log-log ns/param vs size: every optimizer (left) with the probe of each access pattern as
    dashed lines; Adam against NumPy and torch (right). Returns a message when it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "--plot: matplotlib is not installed (pip install matplotlib); no plot written"
    single = [lay for lay in LAYOUTS if lay.single_f32]
    rows = [r for r in doc["rows"] if any(r["layout"] == lay.key for lay in single)]
    if not rows:
        return "--plot: no single-array float32 rows to plot"
    size_of = {lay.key: lay.total for lay in single}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 6.2), sharey=True)
    cmap = plt.get_cmap("tab20")
    for i, case in enumerate(CASES):
        pts = sorted((size_of[r["layout"]], r["native_ns"]) for r in rows if r["case"] == case.key)
        if pts:
            ax1.plot(*zip(*pts), marker="o", ms=3, lw=1.2, color=cmap(i), label=case.key)
    grays = {1: "0.75", 2: "0.55", 3: "0.35", 4: "0.1"}
    for pat, col in grays.items():
        by_size: dict[int, list[float]] = {}
        for r in rows:
            if r["pattern"] == pat and not _isnan(r["probe_ns"]):
                by_size.setdefault(size_of[r["layout"]], []).append(r["probe_ns"])
        if by_size:
            xs = sorted(by_size)
            ys = [sorted(by_size[x])[len(by_size[x]) // 2] for x in xs]
            ax1.plot(xs, ys, ls="--", lw=2.2, color=col, label=f"probe {pat} rw")
    ax1.set_title("native step, every optimizer (float32, one array)")
    for name, label, style in (("native", "fusedopt native", "-o"), ("probe", "memory probe (3 rw)", "--"),
                               ("numpy", "NumPy reference", "-s"), ("torch_loop", "torch for-loop", "-^"),
                               ("torch_fused", "torch fused", "-v")):
        pts = sorted((size_of[r["layout"]], r[f"{name}_ns"]) for r in rows
                     if r["case"] == "Adam" and not _isnan(r[f"{name}_ns"]))
        if pts:
            ax2.plot(*zip(*pts), style, ms=4, lw=2.2 if name == "probe" else 1.5,
                     color="0.35" if name == "probe" else None, label=label)
    ax2.set_title("Adam (float32, one array)")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("parameters")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=4 if ax is ax1 else 2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    ax1.set_ylabel("ns per parameter (median)")
    m = doc["meta"]
    fig.suptitle(f"fusedopt {m['fusedopt']}, {m['target']}, {m['threads']} threads; {m['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return None
