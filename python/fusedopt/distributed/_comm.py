"""The collectives the distributed wrappers use, over an mpi4py communicator, or over a world of
one process when there is no MPI (the same step code runs; every collective is a copy or nothing).

Gradients are averaged in rank order, ``((g_0 + g_1) + g_2 + ...) / world_size`` in their own
dtype (16-bit ones in float32, rounded once to their dtype), not by MPI's reduction (whose
order is the MPI library's choice, so its bits cannot be reproduced): an Alltoallv hands each
rank every rank's copy of its shard, and the rank sums them in order. That moves the bytes of
a ring reduce-scatter, and a single process averaging the same gradients the same way gets the
same bits.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def _world() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:  # no MPI: a world of one process
        return None
    return MPI.COMM_WORLD


def _wire(a: np.ndarray) -> np.ndarray:
    """`a` as MPI carries it: 16-bit floats (MPI has no bfloat16) as their uint16 bits."""
    return a.view(np.uint16) if a.dtype.itemsize == 2 else a


# A mean over ranks runs in the gradients' dtype, or for 16-bit ones in float32 with the result
# rounded once to their dtype: _sum_buffer is where the sum runs, _mean_into ends it.
def _sum_buffer(first: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`out` holding `first`, or for 16-bit arrays a float32 copy of `first`."""
    if first.dtype.itemsize == 2:
        return first.astype(np.float32)
    np.copyto(out, first)
    return out


def _mean_into(total: np.ndarray, n: int, out: np.ndarray) -> None:
    """out = total / n (`total` from _sum_buffer; a float32 one rounded once into `out`)."""
    np.divide(total, total.dtype.type(n), out=total)
    if total is not out:
        out[...] = total


def mean_in_order(parts: np.ndarray, n: int, out: np.ndarray) -> None:
    """out = ((p_0 + p_1) + ... + p_{n-1}) / n over `parts`, n consecutive runs of out.size
    elements."""
    m = out.size
    total = _sum_buffer(parts[:m], out)
    for k in range(1, n):
        part = parts[k * m : (k + 1) * m]
        np.add(total, part if total is out else part.astype(np.float32), out=total)
    _mean_into(total, n, out)


class Collectives:
    """An mpi4py communicator (default ``MPI.COMM_WORLD``; None and no mpi4py: one process), with
    per-rank counters of the bytes this rank hands to MPI and the seconds spent in collectives."""

    def __init__(self, comm: Any = None) -> None:
        self.comm = _world() if comm is None else comm
        self.rank: int = 0 if self.comm is None else int(self.comm.Get_rank())
        self.size: int = 1 if self.comm is None else int(self.comm.Get_size())
        self.bytes_sent = 0
        self.seconds = 0.0
        self._scratch = np.empty(0, np.float32)
        self._send = np.empty(0, np.float32)

    def _mpi_type(self, dtype: np.dtype[Any]) -> Any:
        from mpi4py.util.dtlib import from_numpy_dtype

        return from_numpy_dtype(dtype)

    def _recv_buffer(self, n: int, dtype: np.dtype[Any]) -> np.ndarray:
        if self._scratch.dtype != dtype or self._scratch.size < n:
            self._scratch = np.empty(n, dtype)
        return self._scratch[:n]

    def _send_buffer(self, n: int, dtype: np.dtype[Any]) -> np.ndarray:
        if self._send.dtype != dtype or self._send.size < n:
            self._send = np.empty(n, dtype)
        return self._send[:n]

    def reduce_scatter_mean(self, send: np.ndarray, bounds: list[int], out: np.ndarray) -> None:
        """out = the rank-order average of every rank's ``send[bounds[rank]:bounds[rank + 1]]``."""
        lo, hi = bounds[self.rank], bounds[self.rank + 1]
        if self.size == 1:
            np.copyto(out, send[lo:hi])  # / 1 is exact
            return
        start = time.perf_counter()
        m, n = hi - lo, self.size
        recv = self._recv_buffer(n * m, send.dtype)
        t = self._mpi_type(_wire(send).dtype)
        counts = [bounds[k + 1] - bounds[k] for k in range(n)]
        self.comm.Alltoallv([_wire(send), (counts, bounds[:-1]), t],
                            [_wire(recv), ([m] * n, [k * m for k in range(n)]), t])
        mean_in_order(recv, n, out)
        self.bytes_sent += (bounds[-1] - m) * send.itemsize
        self.seconds += time.perf_counter() - start

    def allgather(self, flat: np.ndarray, bounds: list[int]) -> None:
        """Every rank's ``flat[bounds[r]:bounds[r + 1]]`` to every rank, in place. An Alltoallv (the
        shard to each other rank), not MPICH's Allgatherv: measured on 2 cores at 3 ranks, its ring
        waited for descheduled neighbours at every step (1.7 s for 16 MB, the Alltoallv 13 ms)."""
        if self.size == 1:
            return
        start = time.perf_counter()
        r, n = self.rank, self.size
        counts = [bounds[k + 1] - bounds[k] for k in range(n)]
        mine = self._send_buffer(counts[r], flat.dtype)  # MPI forbids a send buffer inside the receive one
        np.copyto(mine, flat[bounds[r] : bounds[r + 1]])
        send_counts = [0 if k == r else counts[r] for k in range(n)]
        recv_counts = [0 if k == r else counts[k] for k in range(n)]
        t = self._mpi_type(_wire(flat).dtype)
        self.comm.Alltoallv([_wire(mine), (send_counts, [0] * n), t], [_wire(flat), (recv_counts, bounds[:-1]), t])
        self.bytes_sent += (n - 1) * counts[r] * flat.itemsize
        self.seconds += time.perf_counter() - start

    def allreduce_sum(self, a: np.ndarray) -> None:
        """a = the sum over ranks of a, in place (the norm's chunk partials: each has one owner,
        the others add 0, so the order does not matter)."""
        if self.size == 1:
            return
        from mpi4py import MPI

        start = time.perf_counter()
        self.comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
        # What a bandwidth-optimal allreduce (reduce-scatter + all-gather) sends; MPI chooses its own.
        self.bytes_sent += 2 * (self.size - 1) * a.nbytes // self.size
        self.seconds += time.perf_counter() - start

    def allreduce_mean(self, send: np.ndarray, out: np.ndarray) -> None:
        """out = the sum over ranks of `send` (one MPI_Allreduce: the library's order) / size."""
        total = _sum_buffer(send, out)
        self.allreduce_sum(total)
        _mean_into(total, self.size, out)

    def broadcast(self, a: np.ndarray) -> None:
        """Rank 0's `a` to every rank, in place."""
        if self.size > 1:
            self.comm.Bcast(_wire(a), root=0)

    def gather_objects(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` on rank 0 (in rank order); None elsewhere."""
        if self.size == 1:
            return [obj]
        return self.comm.gather(obj, root=0)  # type: ignore[no-any-return]
