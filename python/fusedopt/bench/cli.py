"""``python -m fusedopt bench``: every optimizer x layout x {native (2 threads and 1), memory
probe, NumPy reference, torch for-loop, torch fused}, in one run, medians of repeats.

    python -m fusedopt bench --quick                      # < 1 minute
    python -m fusedopt bench --json out.json --plot out.png --markdown out.md
    python -m fusedopt bench --threshold-sweep --simd-compare --memory --denormals   # the extras
    python -m fusedopt bench --loaded --optimizers SGD+mom,Adam    # beside a busy process
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import fusedopt
from fusedopt import _core

from . import report
from .cases import CASES, LAYOUTS, Case, Layout, select_cases, select_layouts
from .beside_blas import blas_compare
from .denormals import denormal_compare
from .compressed import compressed_compare
from .sparse import sparse_compare
from .probe import step_probe
from .muon import QUICK_SHAPES as MUON_QUICK, SHAPES as MUON_SHAPES, muon_compare
from .timing import (
    BusyNeighbour,
    Contender,
    CpuWatch,
    measure_quiet,
    memory_over_steps,
    set_malloc_mode,
    settle,
)

# ---- settings -------------------------------------------------------------------------------

QUICK = {"repeats": 7, "repeats_torch": 5, "repeats_numpy": 3, "min_time": 0.003, "tries": 1, "max_others": 0.15}
FULL = {"repeats": 21, "repeats_torch": 9, "repeats_numpy": 5, "min_time": 0.010, "tries": 4, "max_others": 0.15}


class Progress:
    """tqdm if installed, else a plain counter on stderr."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.n, self.enabled = total, 0, enabled
        self.bar = None
        self._last = 0.0
        if enabled:
            try:
                from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

                self.bar = tqdm(total=total, unit="run", dynamic_ncols=True, file=sys.stderr, leave=False)
            except ImportError:
                self.bar = None

    def describe(self, text: str) -> None:
        self.text = text
        if self.bar is not None:
            self.bar.set_description_str(text, refresh=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self._last > 0.5 or self.n == self.total:
            self._last = time.monotonic()
            sys.stderr.write(f"\r[{self.n}/{self.total}] {getattr(self, 'text', '')[:60]:<60}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


def _torch() -> Any:
    """torch, or None when it is not installed (imported lazily: it takes a second or two)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    return torch


# ---- building the contenders ----------------------------------------------------------------

def make_data(layout: Layout, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Initial parameters and (fixed) gradients of a layout."""
    rng = np.random.default_rng(seed)
    dt = layout.dtype
    p0 = [rng.standard_normal(n, dtype=dt) for n in layout.sizes]
    g = [rng.standard_normal(n, dtype=dt) * dt(0.1) for n in layout.sizes]
    return p0, g


def _flat(layout: Layout, p0: Sequence[np.ndarray], g: Sequence[np.ndarray]) -> tuple[Any, np.ndarray, np.ndarray, str]:
    """The arena case: (owner, flat params, flat grads, note). Uses fusedopt.FlatParams when the
    package has it, else one plain NumPy buffer (what the arena amounts to for the step)."""
    if hasattr(fusedopt, "FlatParams"):
        spec = {f"p{i}": (n,) for i, n in enumerate(layout.sizes)}
        arena = fusedopt.FlatParams(spec, dtype=layout.dtype)
        for i, (a, b) in enumerate(zip(p0, g)):
            arena.params[f"p{i}"][...] = a
            arena.grads[f"p{i}"][...] = b
        return arena, arena.flat_params, arena.flat_grads, "fusedopt.FlatParams"
    return None, np.concatenate(p0), np.concatenate(g), "plain NumPy buffer (fusedopt.FlatParams not available)"


def _param_copies(layout: Layout, p0: Sequence[np.ndarray], g: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
    if layout.arena:
        owner, fp, fg, _ = _flat(layout, p0, g)
        return [fp], [fg], owner
    return [a.copy() for a in p0], list(g), None


def native_opt(case: Case, params: list[np.ndarray], backend: str = "native") -> Any:
    return getattr(fusedopt, case.cls)(params, backend=backend, **dict(case.kwargs))


def torch_opt(torch: Any, case: Case, params: list[np.ndarray], grads: list[np.ndarray], fused: bool) -> Any:
    tensors = []
    for p, g in zip(params, grads):
        t = torch.from_numpy(p)
        t.requires_grad_(True)
        t.grad = torch.from_numpy(g)
        tensors.append(t)
    assert case.torch_cls is not None
    cls = getattr(torch.optim, case.torch_cls)
    kw = dict(case.kwargs)
    if fused:
        return cls(tensors, fused=True, **kw)
    return cls(tensors, foreach=False, **kw)


def _torch_contender(torch: Any, case: Case, layout: Layout, p0: Sequence[np.ndarray], g: Sequence[np.ndarray],
                     fused: bool, keep: list[Any], notes: list[str]) -> Contender | None:
    params, grads, owner = _param_copies(layout, p0, g)
    try:
        topt = torch_opt(torch, case, params, grads, fused)
    except (RuntimeError, ValueError, TypeError) as e:  # pragma: no cover - torch version drift
        notes.append(f"torch {'fused' if fused else 'for-loop'}: {e}")
        return None
    keep.append((topt, params, grads, owner))
    return Contender("torch_fused" if fused else "torch_loop", topt.step, warmup_steps=case.warmup_steps)


def _step_of(opt: Any, grads: list[np.ndarray]) -> Callable[[], None]:
    return lambda: opt.step(grads)


def _set_threads(n: int) -> Callable[[], None]:
    return lambda: fusedopt.set_num_threads(n)


def _set_min_parallel(n: int) -> Callable[[], None]:
    return lambda: _core.set_min_parallel_elements(n)


def _set_target(name: str) -> Callable[[], None]:
    return lambda: _core.set_target(name)


def _block_one(case: Case, layout: Layout, p0: Sequence[np.ndarray], g: Sequence[np.ndarray], threads: int,
               notes: list[str]) -> list[Contender]:
    """The contenders the targets compare (they own their arrays; dropped with the list)."""
    params, grads, _owner = _param_copies(layout, p0, g)
    opt = native_opt(case, params)
    opt.step(grads)  # creates the state the probe walks too
    probe = step_probe(opt, params, case.pattern - 1, case.key)
    step = _step_of(opt, grads)
    settle(step)
    contenders = [
        Contender("native", step, warmup_steps=case.warmup_steps),
        Contender("probe", probe),
    ]
    if threads > 1:
        contenders.append(Contender("native_1t", step, _set_threads(1), _set_threads(threads),
                                    warmup_steps=case.warmup_steps))
    keep: list[Any] = [_owner]
    if layout.n_arrays > 1:
        one = [np.concatenate(p0)]
        ref_opt = native_opt(case, one)
        contenders.append(Contender("native_one_array", _step_of(ref_opt, [np.concatenate(g)]),
                                    warmup_steps=case.warmup_steps))
    contenders[0].keep = keep  # owners of arrays (an arena, torch tensors) live as long as the block
    return contenders


def bench_one(case: Case, layout: Layout, data: tuple[list[np.ndarray], list[np.ndarray]], cfg: dict[str, Any],
              threads: int, torch: Any, with_numpy: bool, tick: Callable[[], Any]) -> dict[str, Any]:
    """Time one (case, layout), in three blocks whose contenders take turns sample by sample:

    1. native (``threads``), the probe on the native step's own arrays, native on 1 thread and,
       for a layout of many arrays, native on one array of as many parameters;
    2. torch fused and the torch for-loop; 3. the NumPy reference (slow: fewer samples)."""
    p0, g = data
    t_start = time.perf_counter()
    out: dict[str, Any] = {"case": case.key, "layout": layout.key, "params": layout.total,
                           "arrays": layout.n_arrays, "dtype": layout.dtype_name,
                           "pattern": case.pattern, "bytes_per_param": case.bytes_per_param(layout.itemsize),
                           "times": {}, "stats": {}, "notes": []}
    if layout.arena:
        out["notes"].append("fusedopt.FlatParams" if hasattr(fusedopt, "FlatParams")
                            else "plain NumPy buffer (fusedopt.FlatParams not available)")

    def record(stats_attempts: tuple[dict[str, Any], int]) -> None:
        stats, attempts = stats_attempts
        for name, s in stats.items():
            out["times"][name] = s.median
            out["stats"][name] = {**s.as_dict(), "attempts": attempts}

    def timed(contenders: list[Contender], repeats: int) -> tuple[dict[str, Any], int]:
        return measure_quiet(contenders, repeats, cfg["min_time"], tries=cfg["tries"], max_others=cfg["max_others"])

    # --- block 1: native, probe, native 1 thread, one-array reference
    record(timed(_block_one(case, layout, p0, g, threads, out["notes"]), cfg["repeats"]))
    out["seconds_native"] = time.perf_counter() - t_start
    tick()

    # --- block 2: torch fused and for-loop (apart from fusedopt's block: torch's OpenMP threads
    # spin for milliseconds after each step, measured to slow whatever runs next by up to 2x)
    if torch is not None and case.torch_cls is not None:
        keep: list[Any] = []
        made = [_torch_contender(torch, case, layout, p0, g, fused, keep, out["notes"])
                for fused in ((True, False) if case.torch_fused else (False,))]
        cs = [c for c in made if c is not None]
        if cs:
            t0 = time.perf_counter()
            record(timed(cs, cfg["repeats_torch"]))
            out["seconds_torch"] = time.perf_counter() - t0
        del keep, cs, made
    tick()

    # --- block 3: NumPy reference (the same class, backend="numpy")
    if with_numpy:
        params, grads, owner = _param_copies(layout, p0, g)
        ref = native_opt(case, params, backend="numpy")
        record(timed([Contender("numpy", lambda: ref.step(grads), warmup_steps=case.warmup_steps)],
                     cfg["repeats_numpy"]))
        del ref, params, grads, owner
    tick()
    out["seconds"] = time.perf_counter() - t_start
    return out


# ---- the extra analyses ---------------------------------------------------------------------

SWEEP_SIZES = (4 * 1024, 8 * 1024, 16 * 1024, 32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024, 1024 * 1024)
SWEEP_CASES = ("SGD", "Adam", "RAdam")


def threshold_sweep(threads: int, cfg: dict[str, Any], tick: Callable[[], Any]) -> dict[str, Any]:
    """Serial vs parallel (``threads``) native step at sizes around the default threshold, with
    the threshold forced each way; the best threshold is the smallest size from which the
    parallel step is faster at every larger size swept."""
    saved = _core.get_min_parallel_elements()
    rows: list[dict[str, Any]] = []
    try:
        for key in SWEEP_CASES:
            case = next(c for c in CASES if c.key == key)
            for n in SWEEP_SIZES:
                lay = Layout(f"{n}", (n,))
                params, grads = make_data(lay)
                step = _step_of(native_opt(case, params), grads)
                serial = Contender("serial", step, _set_min_parallel(1 << 62), _set_min_parallel(saved),
                                   case.warmup_steps)
                par = Contender("parallel", step, _set_min_parallel(0), _set_min_parallel(saved), case.warmup_steps)
                st, _ = measure_quiet([serial, par], cfg["repeats"], cfg["min_time"], tries=cfg["tries"],
                                      max_others=cfg["max_others"])
                rows.append({"case": key, "params": n, "serial_s": st["serial"].median,
                             "parallel_s": st["parallel"].median, "others_cores": st["serial"].others,
                             "speedup": st["serial"].median / st["parallel"].median})
                tick()
    finally:
        _core.set_min_parallel_elements(saved)
    best: dict[str, Any] = {}
    for key in SWEEP_CASES:
        rs: list[dict[str, Any]] = [r for r in rows if r["case"] == key]
        choice = None
        for i, r in enumerate(rs):
            if all(x["speedup"] > 1.0 for x in rs[i:]):
                choice = r["params"]
                break
        best[key] = choice
    return {"threads": threads, "default": saved, "rows": rows, "best": best}


SIMD_CASES = tuple(c.key for c in CASES)


def simd_compare(layout_keys: Sequence[str], cfg: dict[str, Any], tick: Callable[[], Any]) -> dict[str, Any]:
    """The native step under each SIMD target the CPU supports, interleaved."""
    info = fusedopt.runtime_info()
    targets = [t for t in ("baseline", "avx2", "avx512") if t in info["supported_targets"]]
    saved = fusedopt.get_target()
    rows = []
    try:
        for key in SIMD_CASES:
            case = next(c for c in CASES if c.key == key)
            for lk in layout_keys:
                lay = next(x for x in LAYOUTS if x.key == lk)
                params, grads = make_data(lay)
                step = _step_of(native_opt(case, params), grads)
                cs = [Contender(t, step, _set_target(t), _set_target(saved), case.warmup_steps) for t in targets]
                st, _ = measure_quiet(cs, cfg["repeats"], cfg["min_time"], tries=cfg["tries"],
                                      max_others=cfg["max_others"])
                rows.append({"case": key, "layout": lk, "params": lay.total, "others_cores": st[targets[0]].others,
                             **{t: st[t].median for t in targets}})
                del step, cs, params, grads
                tick()
    finally:
        _core.set_target(saved)
    return {"targets": targets, "rows": rows}


def memory_check(steps: int = 1000) -> dict[str, Any]:
    """1000 native Adam steps on a small model of 8 arrays (about 1.1M parameters)."""
    shapes = [(784, 512), (512,), (512, 512), (512,), (512, 256), (256,), (256, 10), (10,)]
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    grads = [rng.standard_normal(s, dtype=np.float32) * np.float32(0.01) for s in shapes]
    out = {}
    for key in ("Adam", "SGD+mom"):
        case = next(c for c in CASES if c.key == key)
        out[key] = memory_over_steps(_step_of(native_opt(case, [p.copy() for p in params]), grads), steps=steps)
    return out


# ---- main -----------------------------------------------------------------------------------

def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: a number of `kind` > 0 (argparse names the option in its error)."""
    def parse(text: str) -> Any:
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fusedopt bench", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer layouts (no 32M) and repeats: under a minute")
    ap.add_argument("--optimizers", metavar="A,B", help="cases to run (default all): " +
                    ", ".join(c.key for c in CASES))
    ap.add_argument("--layouts", metavar="A,B", help="layouts to run (default all; --quick: a subset): " +
                    ", ".join(lay.key for lay in LAYOUTS))
    ap.add_argument("--threads", type=_positive(int), default=None, help="threads for native and torch (default: fusedopt's)")
    ap.add_argument("--repeats", type=_positive(int), default=None, help="samples per contender (median taken)")
    ap.add_argument("--min-time", type=_positive(float), default=None, help="seconds per sample (steps are looped)")
    ap.add_argument("--no-torch", action="store_true", help="skip torch even if installed")
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference")
    ap.add_argument("--threshold-sweep", action="store_true", help="also sweep the serial/parallel threshold")
    ap.add_argument("--simd-compare", action="store_true", help="also compare the SIMD targets")
    ap.add_argument("--memory", action="store_true", help="also check memory stays flat over 1000 steps")
    ap.add_argument("--denormals", action="store_true",
                    help="also time steps on denormal gradients and state (1e-42) against ordinary values")
    ap.add_argument("--sparse", action="store_true",
                    help="also time SparseAdam on a 1M x 64 table with 1%% of rows touched (row-sparse gradients)")
    ap.add_argument("--compressed", action="store_true",
                    help="also time Adam with bfloat16 and int8 state and bfloat16 parameters (32M; 4M with "
                         "--quick), each beside its own memory probe")
    ap.add_argument("--muon", action="store_true",
                    help="also time Muon steps on 2-D parameters (bfloat16 and float32 Newton-Schulz) against torch")
    ap.add_argument("--beside-blas", action="store_true",
                    help="also time a NumPy training loop's shape: a matmul on NumPy's BLAS, then an Adam step, "
                         "each at 1 and the default threads (fusedopt's idle threads must not slow the matmul)")
    ap.add_argument("--all", action="store_true",
                    help="= --threshold-sweep --simd-compare --memory --denormals --beside-blas")
    ap.add_argument("--loaded", action="store_true",
                    help="run everything with one busy process beside it (a CPU-bound loop), as on a machine "
                         "that also runs a data loader or another job; targets then ask that the default "
                         "threads are never much slower than 1 thread")
    ap.add_argument("--json", metavar="FILE", help="write every figure as JSON")
    ap.add_argument("--from-json", metavar="FILE", help="no run: render the report of a run saved with --json")
    ap.add_argument("--plot", metavar="FILE.png", help="log-log ns/parameter vs size (needs matplotlib)")
    ap.add_argument("--markdown", metavar="FILE.md", help="write the tables as Markdown")
    ap.add_argument("--tries", type=_positive(int), default=None,
                    help="re-measure a block up to this many times while other processes keep the CPUs busy "
                         "(default: 2 quick, 4 full)")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before starting, wait up to this long for 3 s with the CPUs idle")
    ap.add_argument("--malloc", choices=("fresh", "warm", "default"), default="fresh",
                    help="glibc malloc policy for the baselines' temporaries: fresh (default: page faults every "
                         "step, as in a process running only this step), warm (heap reuse: NumPy's best case), "
                         "default (untouched: depends on the order of the rows)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


_OUTPUT_FLAGS = ("json", "markdown", "plot")


def _output_problem(args: argparse.Namespace) -> str | None:
    """Why an output file could not be written, found before a run that may take many minutes."""
    for flag in _OUTPUT_FLAGS:
        path = getattr(args, flag)
        if not path:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            return f"--{flag}: {path} is a directory"
        if not os.path.isdir(folder):
            return f"--{flag}: no directory {folder}"
        if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            return f"--{flag}: {path} is not writable"
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return "--plot: matplotlib is not installed (pip install matplotlib)"
    return None


def _outputs(doc: dict[str, Any], args: argparse.Namespace) -> int:
    """Prints the report and writes the files asked for; 1 if one could not be written."""
    print(report.text(doc))
    try:
        if args.json:
            report.write_json(doc, args.json)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(report.markdown(doc))
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.plot:
        msg = report.plot(doc, args.plot)
        if msg:
            print(msg, file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = _output_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.from_json:
        import json

        try:
            with open(args.from_json) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:  # (JSONDecodeError is a ValueError)
            print(f"error: --from-json: {e}", file=sys.stderr)
            return 2
        return _outputs(report.rebuild(doc), args)
    try:
        cases = select_cases(args.optimizers)
        layouts = select_layouts(args.layouts, args.quick)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats:
        cfg["repeats"] = args.repeats
        cfg["repeats_torch"] = max(3, args.repeats // 2)
        cfg["repeats_numpy"] = max(3, args.repeats // 3)
    if args.min_time:
        cfg["min_time"] = args.min_time
    if args.tries:
        cfg["tries"] = args.tries
    if args.all:
        args.threshold_sweep = args.simd_compare = args.memory = args.denormals = args.beside_blas = True
    if args.loaded:
        cfg["tries"] = 1  # the load is the point: do not wait for it to go away
        cfg["max_others"] = float("inf")

    saved_threads = fusedopt.get_num_threads()
    threads = args.threads or saved_threads
    fusedopt.set_num_threads(threads)
    notes: list[str] = []
    note = set_malloc_mode(args.malloc)
    if note:
        notes.append(note)
    torch = None if args.no_torch else _torch()
    if torch is None:
        notes.append("torch not installed (or --no-torch): torch columns skipped" if not args.no_torch
                     else "--no-torch: torch columns skipped")
    else:
        torch.set_num_threads(threads)
    # torch brings ~150k objects: a full gc.collect() would cost ~0.1 s each time; freeze them
    gc.collect()
    gc.freeze()
    if not hasattr(fusedopt, "FlatParams"):
        notes.append("fusedopt.FlatParams not available: the arena row steps one plain NumPy buffer "
                     "of the same size (what an arena step amounts to)")

    simd_layouts = ("256K", "1M") if args.quick else ("256K", "32M")
    total = 3 * len(cases) * len(layouts)
    if args.threshold_sweep:
        total += len(SWEEP_CASES) * len(SWEEP_SIZES)
    if args.simd_compare:
        total += len(SIMD_CASES) * len(simd_layouts)
    if args.denormals:
        total += len(cases)
    if args.sparse:
        total += 1
    if args.beside_blas:
        total += int(cfg["repeats"])
    if args.compressed:
        total += 1
    if args.muon:
        total += len(MUON_QUICK if args.quick else MUON_SHAPES)
    progress = Progress(total, not args.no_progress)
    if args.wait_quiet > 0:
        waited = wait_quiet(args.wait_quiet)
        notes.append(f"waited {waited[0]:.0f} s for an idle machine ({'found' if waited[1] else 'not found'})")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    neighbour = BusyNeighbour() if args.loaded else None
    if neighbour is not None:
        notes.append("--loaded: one busy process (a Python loop) ran beside every measurement")
    try:
        for layout in layouts:
            data = make_data(layout)
            for case in cases:
                progress.describe(f"{case.key} {layout.key}")
                results.append(bench_one(case, layout, data, cfg, threads, torch, not args.no_numpy,
                                         progress.update))
            del data
            gc.collect()
        if args.threshold_sweep:
            progress.describe("threshold sweep")
            extras["threshold_sweep"] = threshold_sweep(threads, cfg, progress.update)
        if args.simd_compare:
            progress.describe("SIMD targets")
            extras["simd_compare"] = simd_compare(simd_layouts, cfg, progress.update)
        if args.memory:
            progress.describe("memory over 1000 steps")
            extras["memory"] = memory_check()
        if args.denormals:
            progress.describe("denormals")
            extras["denormals"] = denormal_compare(cases, cfg, progress.update)
        if args.beside_blas:
            progress.describe("beside BLAS")
            extras["beside_blas"] = blas_compare(cfg, progress.update)
        if args.sparse:
            progress.describe("row-sparse")
            extras["sparse"] = sparse_compare(cfg, progress.update)
        if args.compressed:
            progress.describe("compressed state")
            extras["compressed"] = compressed_compare(cfg, progress.update, args.quick)
        if args.muon:
            progress.describe("Muon")
            extras["muon"] = muon_compare(cfg, progress.update, torch, args.quick)
    finally:
        if neighbour is not None:
            neighbour.stop()
        progress.close()
        fusedopt.set_num_threads(saved_threads)
    elapsed = time.perf_counter() - t_start

    info = fusedopt.runtime_info()
    meta = {
        "fusedopt": fusedopt.__version__,
        "target": info.get("active_target"),
        "threads": threads,
        "min_parallel_elements": _core.get_min_parallel_elements(),
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "python": platform.python_version(),
        "machine": _cpu_name(),
        "cpus": os.cpu_count(),
        "mode": "quick" if args.quick else "full",
        "loaded": bool(args.loaded),
        "parallel_regions": info.get("parallel_regions"),
        "config": cfg,
        "seconds": elapsed,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "notes": notes,
    }
    return _outputs(report.build(meta, results, extras), args)


def wait_quiet(limit: float, need: float = 3.0) -> tuple[float, bool]:
    """Wait (up to ``limit`` s) until other processes have used < 0.1 core for ``need`` s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        w = CpuWatch()
        time.sleep(need)
        if w.others() < 0.1:
            return time.monotonic() - t0, True
    return time.monotonic() - t0, False


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
