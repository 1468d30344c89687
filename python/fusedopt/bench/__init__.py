"""The benchmark behind ``python -m fusedopt bench`` (see :mod:`fusedopt.bench.cli`).

Every optimizer x array layout x {native step, memory-traffic probe, NumPy reference, torch
for-loop and fused}, medians of interleaved repeats; a table with ns per parameter, GB/s,
percent of the probe, speedups and 1-vs-N-thread scaling; ``--json``, ``--markdown``, ``--plot``.
Imports nothing heavy (torch, matplotlib, tqdm) until it runs.
"""

from .cli import main

__all__ = ["main"]
