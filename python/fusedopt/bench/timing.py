"""Timing: warm-up, calibrated samples, medians of repeats, contenders interleaved so that a
noisy (shared) machine's drift hits every contender alike; plus the memory-flatness check.

A *sample* runs a step k times back to back and records the mean time per step; k is chosen
so that a sample lasts at least ``min_time`` seconds (1 for a slow step). The reported figure is
the median over ``repeats`` samples. Contenders of one measurement take turns sample by sample
(A B C A B C ...), so a slow second on the machine does not land on one contender only.
"""

from __future__ import annotations

import gc
import itertools
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Step = Callable[[], Any]


@dataclass
class Contender:
    """A step to time. ``enter``/``exit`` run around each sample, outside the timed loop
    (e.g. switching the thread count or the SIMD target)."""

    name: str
    step: Step
    enter: Callable[[], Any] | None = None
    exit: Callable[[], Any] | None = None
    warmup_steps: int = 2
    keep: Any = None  # objects that must live as long as the step (an arena, torch tensors)


@dataclass
class Stats:
    """Seconds per step over the samples of one contender."""

    samples: list[float] = field(default_factory=list)
    k: int = 1  # steps per sample
    others: float = 0.0  # cores other processes used while the samples were taken

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median (a noise indicator)."""
        if len(self.samples) < 4:
            return math.nan
        q = statistics.quantiles(self.samples, n=4)
        return (q[2] - q[0]) / self.median

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "iqr_rel": self.spread,
            "steps_per_sample": self.k,
            "samples": len(self.samples),
            "others_cores": self.others,
        }


# An optimizer first times its steps on the helper threads and on one thread, in epochs of at
# least 20 ms and 3 steps each (team_choice.cpp), then settles on the faster: about 60 ms for
# quick steps, 9 steps for long ones (32M). Samples should see the settled mode.
SETTLE_S = 0.06
SETTLE_STEPS = 10


def settle(step: Step) -> None:
    """Steps for SETTLE_S and at least SETTLE_STEPS, untimed."""
    end = time.perf_counter() + SETTLE_S
    done = 0
    while done < SETTLE_STEPS or time.perf_counter() < end:
        step()
        done += 1


def _run(c: Contender, k: int) -> float:
    if c.enter is not None:
        c.enter()
    try:
        step = c.step
        # One untimed step first: every contender's sample starts with its own arrays in cache,
        # whichever contender (with other arrays) ran before it.
        step()
        t0 = time.perf_counter_ns()
        for _ in range(k):
            step()
        t1 = time.perf_counter_ns()
    finally:
        if c.exit is not None:
            c.exit()
    return (t1 - t0) * 1e-9 / k


def calibrate(c: Contender, min_time: float, max_k: int = 1_000_000) -> int:
    """Warm up, then the number of steps that makes a sample last at least ``min_time``."""
    for _ in range(c.warmup_steps):
        _run(c, 1)
    k = 1
    t = _run(c, 1)
    while t * k < min_time and k < max_k:
        k = min(max_k, max(2 * k, math.ceil(min_time / max(t, 1e-9))))
        t = _run(c, k)  # the per-step time over k steps (the first call is often slower)
    return k


class CpuWatch:
    """How busy the *other* processes kept the machine over an interval, in cores: all CPU
    time the kernel accounted (/proc/stat, steal included) minus this process's own. On a
    shared 2-core machine one busy neighbour costs a team of 2 threads a scheduler time slice
    per parallel region, so a timing taken then says little about the code. Linux only
    (elsewhere it reports 0); resolution: a clock tick (10 ms), so use it over >= 0.2 s."""

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._start = self._read()

    @staticmethod
    def _busy() -> float | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal (guest is inside user)
        return float(v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0))

    def _read(self) -> tuple[float | None, float, float]:
        return self._busy(), time.process_time(), time.perf_counter()

    def others(self) -> float:
        """Cores the other processes used, on average, since construction."""
        b1, p1, w1 = self._read()
        b0, p0, w0 = self._start
        if b0 is None or b1 is None or w1 <= w0:
            return 0.0
        return max(0.0, ((b1 - b0) / self.tick - (p1 - p0)) / (w1 - w0))


class BusyNeighbour:
    """Another process that keeps one core busy (a Python loop) until stopped: ``bench --loaded``."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)  # let it start spinning

    def stop(self) -> None:
        self._proc.kill()
        self._proc.wait()


def measure(contenders: Sequence[Contender], repeats: int, min_time: float,
            tick: Callable[[], Any] | None = None) -> dict[str, Stats]:
    """Median-of-``repeats`` timing of each contender, interleaved sample by sample. Each
    Stats also records ``others``: the cores other processes used meanwhile."""
    stats = {c.name: Stats() for c in contenders}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no collection pauses inside samples (steps create no reference cycles)
    try:
        for c in contenders:
            stats[c.name].k = calibrate(c, min_time)
        watch = CpuWatch()
        for _ in range(repeats):
            for c in contenders:
                stats[c.name].samples.append(_run(c, stats[c.name].k))
            if tick is not None:
                tick()
        busy = watch.others()
        for st in stats.values():
            st.others = busy
    finally:
        if gc_was_enabled:
            gc.enable()
    return stats


def measure_quiet(contenders: Sequence[Contender], repeats: int, min_time: float, *, tries: int = 1,
                  max_others: float = 0.15) -> tuple[dict[str, Stats], int]:
    """``measure``, again (up to ``tries`` times in all) while other processes used more than
    ``max_others`` cores meanwhile; returns the least disturbed attempt and the attempts made."""
    best: dict[str, Stats] | None = None
    for attempt in range(1, max(1, tries) + 1):
        st = measure(contenders, repeats, min_time)
        if best is None or next(iter(st.values())).others < next(iter(best.values())).others:
            best = st
        if next(iter(st.values())).others <= max_others:
            return st, attempt
        if attempt < tries:
            time.sleep(0.2 * attempt)
    assert best is not None
    return best, max(1, tries)


MALLOC_MODES = ("fresh", "warm", "default")


def set_malloc_mode(mode: str) -> str | None:
    """Fix glibc malloc's big-block policy so that the NumPy and torch baselines (which allocate
    temporaries every step; the native step does not) do not depend on what ran before.

    glibc serves a block of at least the *mmap threshold* with a fresh mmap (page faults on
    first touch, unmapped on free). The threshold starts at 128 KiB and rises to the size of a
    freed mmapped block (up to 32 MiB), so a step that allocates same-size temporaries keeps
    mmapping them, while one that runs after a bigger block was freed reuses heap memory:
    measured here, NumPy's ``y = x*2; z = y + x`` on 1M floats costs 2.0 ns/element either
    in a fresh process or after freeing a 64 MiB block, and 0.17 ns after a 16 MiB one.

    fresh: thresholds fixed at glibc's initial 128 KiB, what a process running only this
    step sees (the default); warm: 32/64 MiB, temporaries reuse the heap (NumPy's best case);
    default: leave malloc alone (results then depend on the order of the rows).
    Returns a note for the report, or None where this is not glibc."""
    if mode == "default":
        return None
    if mode not in MALLOC_MODES:
        raise ValueError(f"malloc mode must be one of {MALLOC_MODES}, got {mode!r}")
    mmap_t, trim_t = (128 * 1024, 128 * 1024) if mode == "fresh" else (32 * 1024 * 1024, 64 * 1024 * 1024)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, mmap_t) and libc.mallopt(m_trim_threshold, trim_t)
    except (OSError, AttributeError):
        return None
    if not ok:
        return None
    return (f"glibc malloc '{mode}': mmap threshold {mmap_t // 1024} KiB, trim {trim_t // 1024} KiB "
            + ("(big temporaries of NumPy/torch page-fault every step, as in a fresh process)" if mode == "fresh"
               else "(big temporaries reuse the heap: NumPy's best case)"))


# ---- memory ---------------------------------------------------------------------------------

def rss_bytes() -> int:
    """Resident set size now (Linux /proc/self/statm; elsewhere ru_maxrss, a high-water mark)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        import sys

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(r if sys.platform == "darwin" else r * 1024)


def memory_over_steps(step: Step, steps: int = 1000, warmup: int = 10, chunks: int = 4) -> dict[str, Any]:
    """Run ``warmup`` steps (the state gets created), then ``steps`` more under tracemalloc.

    Returns the growth over the ``steps`` of Python-visible memory (tracemalloc; NumPy
    registers its buffers there too) and of the RSS, the growth over each of ``chunks`` equal
    parts (a leak grows in every part; a cache filling up only in the first), and the
    tracemalloc peak above the current level (what a step allocates transiently)."""
    for _ in range(warmup):
        step()
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        for _ in range(warmup):  # let tracemalloc's own tables settle
            step()
        gc.collect()
        tracemalloc.reset_peak()
        start_current, _ = tracemalloc.get_traced_memory()
        rss0 = rss_bytes()
        rss_max = rss0
        marks = [start_current]
        peak_above = 0
        per_chunk = max(1, steps // chunks)
        t0 = time.perf_counter()
        for i in range(steps):
            step()
            if (i + 1) % per_chunk == 0 or i + 1 == steps:
                # the transient peak of the steps alone (this bookkeeping allocates too)
                peak_above = max(peak_above, tracemalloc.get_traced_memory()[1] - marks[-1])
                rss_max = max(rss_max, rss_bytes())
                gc.collect()
                marks.append(tracemalloc.get_traced_memory()[0])
                tracemalloc.reset_peak()
        elapsed = time.perf_counter() - t0
        end_current = marks[-1]
        rss1 = rss_bytes()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return {
        "steps": steps,
        "traced_growth_bytes": end_current - start_current,
        "traced_growth_per_chunk_bytes": [b - a for a, b in itertools.pairwise(marks)],
        "traced_peak_above_start_bytes": peak_above,
        "rss_start_bytes": rss0,
        "rss_growth_bytes": rss1 - rss0,
        "rss_max_growth_bytes": rss_max - rss0,
        "seconds": elapsed,
    }
