"""Data-parallel training of a small NumPy MLP over MPI with fusedopt.

    mpiexec -n 2 python examples/mpi_data_parallel.py            # or -n 4, or plain `python` (one process)
    mpiexec -n 2 python examples/mpi_data_parallel.py --sharded  # ZeRO-1: each rank keeps 1/N of the state

Every rank builds the same model (rank 0's initial parameters are broadcast), takes its own slice
of each batch, computes gradients with a hand-written backward pass, and steps through the
wrapper, which averages the gradients over the ranks. The parameters stay identical on every rank.
"""

from __future__ import annotations

import argparse
import pickle

import numpy as np

import fusedopt as fo
from fusedopt.distributed import DataParallel, ShardedOptimizer

try:
    from mpi4py import MPI

    COMM = MPI.COMM_WORLD
    RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
except ImportError:  # no MPI: one process, the same code
    COMM, RANK, SIZE = None, 0, 1


def make_data(n=4096, d=20, classes=4, seed=0):
    """A synthetic classification set, the same on every rank."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)) * 0.5
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return x, y


def forward_backward(arena, x, y):
    """Softmax cross-entropy of a one-hidden-layer MLP; writes the gradients into arena.grads."""
    p, g = arena.params, arena.grads
    h = np.maximum(x @ p["W1"] + p["b1"], 0)
    logits = h @ p["W2"] + p["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(len(y)), y] + 1e-12).mean()
    d = prob
    d[np.arange(len(y)), y] -= 1
    d /= len(y)
    g["W2"][:] = h.T @ d
    g["b2"][:] = d.sum(axis=0)
    dh = (d @ p["W2"].T) * (h > 0)
    g["W1"][:] = x.T @ dh
    g["b1"][:] = dh.sum(axis=0)
    return float(loss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sharded", action="store_true", help="ZeRO-1 instead of plain data parallel")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=256, help="global batch, split over the ranks")
    ap.add_argument("--checkpoint", default=None, help="write a consolidated checkpoint here at the end")
    args = ap.parse_args()

    x, y = make_data()
    arena = fo.FlatParams({"W1": (20, 64), "b1": (64,), "W2": (64, 4), "b2": (4,)})
    rng = np.random.default_rng(RANK)  # different on every rank: the wrapper broadcasts rank 0's
    fo.init.kaiming_uniform(arena.params["W1"], rng=rng)
    fo.init.kaiming_uniform(arena.params["W2"], rng=rng)

    opt = fo.AdamW([arena.flat_params], lr=3e-3, weight_decay=1e-4, max_grad_norm=1.0)
    wrapper = ShardedOptimizer if args.sharded else DataParallel
    opt = wrapper(opt, COMM)  # rank 0's parameters to every rank
    sched = fo.schedules.CosineAnnealingLR(opt, T_max=args.steps)

    order = np.random.default_rng(1)  # the same batches on every rank
    local = args.batch // SIZE
    for step in range(args.steps):
        batch = order.choice(len(x), args.batch, replace=False)
        mine = batch[RANK * local : (RANK + 1) * local]  # this rank's share of the batch
        loss = forward_backward(arena, x[mine], y[mine])
        opt.step([arena.flat_grads])  # averaged over the ranks, then one fused step
        sched.step()
        if step % 100 == 0 and RANK == 0:
            print(f"step {step:4d}  loss {loss:.4f}  grad norm {opt.last_grad_norm:.3f}")

    h = np.maximum(x @ arena.params["W1"] + arena.params["b1"], 0)
    accuracy = float(((h @ arena.params["W2"] + arena.params["b2"]).argmax(axis=1) == y).mean())
    if args.sharded:
        state = opt.consolidated_state_dict()  # collective: every rank calls it; rank 0 gets it
    else:
        state = opt.state_dict()  # the same on every rank
    if RANK == 0:
        print(f"{SIZE} rank(s), {'ZeRO-1' if args.sharded else 'data parallel'}: accuracy {accuracy:.3f}")
        if args.checkpoint:
            with open(args.checkpoint, "wb") as f:
                pickle.dump({"params": arena.flat_params.copy(), "optimizer": state}, f)


if __name__ == "__main__":
    main()
