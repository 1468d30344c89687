"""Beyond one machine: data-parallel steps and ZeRO-1 sharded optimizer state over MPI (mpi4py;
``pip install fusedopt[mpi]``). Without mpi4py, or with one process, the same code runs as a
world of one. See docs/distributed.md."""

from ._comm import Collectives
from ._layout import shard_bounds
from .data_parallel import DataParallel
from .sharded import ShardedOptimizer

__all__ = ["Collectives", "DataParallel", "ShardedOptimizer", "shard_bounds"]
