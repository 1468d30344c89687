"""Distributed steps, per rank: the step and its communication time, the bytes this rank hands to
MPI per step, and its optimizer state. Launch with mpiexec::

    mpiexec -n 2 python bench/mpi_steps.py                 # 4M and 32M float32 parameters
    mpiexec -n 3 python bench/mpi_steps.py --sizes 4M --steps 3
    mpiexec -n 2 python bench/mpi_steps.py --quick         # 64K, 2 steps: a smoke run

AdamW (max_grad_norm=1.0, so the sharded step's norm allreduce is in) over one flat float32
buffer (FlatParams' layout: no packing copies). Modes: data-parallel with the rank-order average
(two Alltoallv), data-parallel with one MPI_Allreduce, and ZeRO-1 (ShardedOptimizer).
'comm' is the time inside collectives, which includes waiting for the slowest rank; 'step' is
the whole wrapper step. Rank 0 prints one row per rank, mode and size.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI

import fusedopt as fo
from fusedopt.distributed import DataParallel, ShardedOptimizer

MODES = {
    "dp-ordered": lambda opt, comm: DataParallel(opt, comm),
    "dp-allreduce": lambda opt, comm: DataParallel(opt, comm, average="allreduce"),
    "zero1": lambda opt, comm: ShardedOptimizer(opt, comm),
}


def size_arg(text: str) -> int:
    units = {"K": 2**10, "M": 2**20}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def state_bytes(w) -> int:
    opt = w.inner if isinstance(w, ShardedOptimizer) else w.optimizer
    return sum(v.nbytes for st in opt.state.values() for v in st.values() if isinstance(v, np.ndarray))


def measure(mode: str, n: int, steps: int, comm) -> dict[str, float]:
    rank = comm.Get_rank()
    params = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    grads = np.random.default_rng(1 + rank).standard_normal(n).astype(np.float32)
    w = MODES[mode](fo.AdamW([params], lr=1e-3, weight_decay=0.01, max_grad_norm=1.0), comm)
    w.step([grads])  # warm-up: state allocated, buffers touched
    comm.Barrier()
    sent, secs = w.comm.bytes_sent, w.comm.seconds
    start = time.perf_counter()
    for _ in range(steps):
        w.step([grads])
    total = time.perf_counter() - start
    return {
        "step_ms": 1e3 * total / steps,
        "comm_ms": 1e3 * (w.comm.seconds - secs) / steps,
        "sent_mb": (w.comm.bytes_sent - sent) / steps / 1e6,
        "state_mb": state_bytes(w) / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=size_arg, default=[4 * 2**20, 32 * 2**20])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    ap.add_argument("--quick", action="store_true", help="64K parameters, 2 steps")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.steps = [64 * 2**10], 2
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    fo.set_num_threads(1)  # the ranks share the cores
    rows = []
    for n in args.sizes:
        single = None
        if rank == 0:  # the plain single-process step at the same size, for scale (others wait)
            p = np.zeros(n, np.float32)
            g = np.ones(n, np.float32)
            opt = fo.AdamW([p], lr=1e-3, weight_decay=0.01, max_grad_norm=1.0)
            opt.step([g])
            t = time.perf_counter()
            for _ in range(args.steps):
                opt.step([g])
            single = 1e3 * (time.perf_counter() - t) / args.steps
        comm.Barrier()
        for mode in args.modes:
            r = measure(mode, n, args.steps, comm)
            rows.append((n, mode, single, r))
    everyone = comm.gather(rows, root=0)
    if rank == 0:
        print(f"{size} ranks, AdamW float32, {args.steps} steps; single-process step for scale; per rank:")
        print(f"{'params':>8} {'mode':>13} {'rank':>4} {'step ms':>8} {'comm ms':>8} {'other ms':>8} "
              f"{'MB sent':>9} {'state MB':>9} {'1-proc ms':>9}")
        for i in range(len(rows)):
            for r, mine in enumerate(everyone):
                n, mode, _, m = mine[i]
                single = rows[i][2]
                print(f"{n / 2**20:>7.2f}M {mode:>13} {r:>4} {m['step_ms']:>8.1f} {m['comm_ms']:>8.1f} "
                      f"{m['step_ms'] - m['comm_ms']:>8.1f} {m['sent_mb']:>9.3f} {m['state_mb']:>9.3f} {single:>9.1f}")


if __name__ == "__main__":
    main()
