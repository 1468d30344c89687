"""Row-sparse gradients: the gradient of an embedding table, given as the rows it touches.

``RowSparse(indices, rows)`` stands wherever a dense gradient may (a list, a dict, or alone for
a single parameter) for optimizers that take it (SGD without momentum or weight decay, Adagrad
without weight decay, Adam/AdamW (lazy) and SparseAdam; see docs/sparse.md). ``indices`` index
the parameter's first axis (int32 or int64, any order, repeats allowed as an embedding backward
produces them) and ``rows[k]`` is the gradient of row ``indices[k]``: shape
``(len(indices),) + param.shape[1:]``, the parameter's dtype. A row given more than once gets the
sum of its copies (torch coalesces sparse gradients the same way). The step checks both arrays as
strictly as a dense gradient and never converts them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RowSparse:
    """A row-sparse gradient: ``indices`` (1-d, int32/int64) and their ``rows``.

    Not a tuple on purpose: a single ``RowSparse`` passed to ``step`` is one gradient, not two.
    """

    __slots__ = ("indices", "rows")

    def __init__(self, indices: np.ndarray, rows: np.ndarray) -> None:
        self.indices = indices
        self.rows = rows

    def __repr__(self) -> str:
        shape = getattr(self.rows, "shape", None)
        return f"RowSparse({len(self.indices)} indices, rows {shape})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (RowSparse, (self.indices, self.rows))

    @classmethod
    def from_torch(cls, t: Any) -> RowSparse:
        """From a sparse COO torch tensor with one sparse dimension (``nn.Embedding(sparse=True)``'s
        gradient), as NumPy arrays that share its memory (nothing is coalesced here)."""
        if not getattr(t, "is_sparse", False) or t.sparse_dim() != 1:
            raise ValueError("RowSparse.from_torch: expected a sparse COO tensor with one sparse dimension")
        return cls(t._indices()[0].numpy(), t._values().numpy())

    def to_dense(self, shape: tuple[int, ...]) -> np.ndarray:
        """The dense gradient of a parameter of ``shape``: rows summed where indices repeat."""
        out = np.zeros(shape, dtype=self.rows.dtype)
        np.add.at(out, self.indices, self.rows)
        return out
