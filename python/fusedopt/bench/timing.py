"""Timing: warm-up, calibrated samples, medians of repeats, contenders interleaved so that a
noisy (shared) machine's drift hits every contender alike; plus the memory-flatness check.

A *sample* runs a step k times back to back and records the mean time per step; k is chosen
so that a sample lasts at least ``min_time`` seconds (1 for a slow step). The reported figure is
the median over ``repeats`` samples. Contenders of one measurement take turns sample by sample
(A B C A B C ...), so a slow second on the machine does not land on one contender only.
"""

from __future__ import annotations

import gc
import math
import os
import statistics
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


@dataclass
class Stats:
    """Seconds per step over the samples of one contender."""

    samples: list[float] = field(default_factory=list)
    k: int = 1  # steps per sample

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
        }


def _run(c: Contender, k: int) -> float:
    if c.enter is not None:
        c.enter()
    try:
        step = c.step
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


def measure(contenders: Sequence[Contender], repeats: int, min_time: float,
            tick: Callable[[], Any] | None = None) -> dict[str, Stats]:
    """Median-of-``repeats`` timing of each contender, interleaved sample by sample."""
    stats = {c.name: Stats() for c in contenders}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for c in contenders:
            stats[c.name].k = calibrate(c, min_time)
        for _ in range(repeats):
            for c in contenders:
                stats[c.name].samples.append(_run(c, stats[c.name].k))
            if tick is not None:
                tick()
    finally:
        if gc_was_enabled:
            gc.enable()
    return stats


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


def memory_over_steps(step: Step, steps: int = 1000, warmup: int = 10) -> dict[str, Any]:
    """Run ``warmup`` steps (state gets created), then ``steps`` more under tracemalloc.

    Returns the growth of Python-visible memory (tracemalloc: NumPy registers its buffers
    there too) and of the RSS over the ``steps``, and the tracemalloc peak above the starting
    point (the transient allocation of one step: the per-step plan objects)."""
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
        t0 = time.perf_counter()
        for i in range(steps):
            step()
            if i % 50 == 49:
                rss_max = max(rss_max, rss_bytes())
        elapsed = time.perf_counter() - t0
        gc.collect()
        end_current, peak = tracemalloc.get_traced_memory()
        rss1 = rss_bytes()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return {
        "steps": steps,
        "traced_growth_bytes": end_current - start_current,
        "traced_peak_above_start_bytes": peak - start_current,
        "rss_start_bytes": rss0,
        "rss_growth_bytes": rss1 - rss0,
        "rss_max_growth_bytes": rss_max - rss0,
        "seconds": elapsed,
    }
