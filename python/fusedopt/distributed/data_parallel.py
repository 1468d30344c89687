"""Data-parallel steps: every rank averages its gradients with every other rank's and applies the
same step with its own full copy of the optimizer, so parameters stay identical on every rank."""

from __future__ import annotations

from typing import Any

from .._checks import choice, flag
from ..optim._types import GradsLike
from ._comm import Collectives
from ._layout import FlatLayout, aligned_empty, shard_bounds
from ._wrapped import WrapsOptimizer

_AVERAGES = ("ordered", "allreduce")


class DataParallel(WrapsOptimizer):
    """Wraps any fusedopt optimizer: ``step(grads)`` averages the gradients over every rank of
    `comm` (an mpi4py communicator; default ``MPI.COMM_WORLD``; without mpi4py, one process)
    through one flat buffer, then steps.

    ``average="ordered"`` (default): ``((g_0 + g_1) + ...) / world_size`` in the gradients'
    dtype (bfloat16 and float16: in float32, rounded once), rank by rank (a reduce-scatter as
    one Alltoallv, then an all-gather: the bytes of a ring allreduce), so a single process
    averaging the same way gets the same bits.
    ``average="allreduce"``: one ``MPI_Allreduce`` (SUM) over the buffer, then the division; the
    summation order is the MPI library's (the same on every rank in MPICH and Open MPI).

    With ``broadcast=True`` rank 0's parameters are copied to every rank first (as torch's DDP
    does). Everything else (param_groups, state, state_dict, schedulers) is the wrapped
    optimizer's, identical on every rank.
    """

    def __init__(self, optimizer: Any, comm: Any = None, *, average: str = "ordered", broadcast: bool = True) -> None:
        self.average = choice(average, "average", _AVERAGES)
        self.optimizer = optimizer
        self.layout = FlatLayout(optimizer)
        self.comm = Collectives(comm)
        self._bounds = shard_bounds(self.layout.total, self.comm.size)
        self._packed = aligned_empty(0 if self.layout.single else self.layout.total, self.layout.dtype)
        self._mean = aligned_empty(self.layout.total, self.layout.dtype)
        self._mean_views = self.layout.structured(self.layout.like_params(self._mean))
        if flag(broadcast, "broadcast") and self.comm.size > 1:
            flat = aligned_empty(self.layout.total, self.layout.dtype)
            self.layout.copy_in(flat)
            self.comm.broadcast(flat)
            self.layout.copy_out(flat)

    def step(self, grads: GradsLike) -> None:
        """Average `grads` (every parameter's, same structure as the params) over the ranks and step."""
        flat = self.layout.pack(self.layout.grad_list(grads), self._packed)
        if self.average == "ordered":
            lo, hi = self._bounds[self.comm.rank], self._bounds[self.comm.rank + 1]
            self.comm.reduce_scatter_mean(flat, self._bounds, self._mean[lo:hi])
            self.comm.allgather(self._mean, self._bounds)
        else:
            self.comm.allreduce_mean(flat, self._mean)
        self.optimizer.step(self._mean_views)

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's (the same on every rank: save it from rank 0)."""
        return self.optimizer.state_dict()  # type: ignore[no-any-return]

    def load_state_dict(self, state_dict: Any) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __getattr__(self, name: str) -> Any:
        # state, step_count, last_grad_norm, ...: the wrapped optimizer's.
        if name.startswith("__") or name in ("optimizer", "layout", "comm"):
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("DataParallel holds an MPI communicator: save state_dict() (or pickle .optimizer) instead")

    def __repr__(self) -> str:
        return f"DataParallel({type(self.optimizer).__name__}, rank {self.comm.rank} of {self.comm.size}, average={self.average!r})"
