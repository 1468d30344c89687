"""SparseAdam (torch.optim.SparseAdam): lazy Adam for row-sparse gradients."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Betas, as_betas, Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class SparseAdam(Optimizer):
    """Adam on the touched rows only, as torch.optim.SparseAdam computes it. Gradients must be
    row-sparse (``fusedopt.RowSparse(indices, rows)``, repeated indices summed); only the touched
    rows of the parameter and of its two moments are read and written::

        g = -g if maximize                       (the rows of the coalesced gradient)
        m += (g - m) * (1 - beta1);   v += (g*g - v) * (1 - beta2)
        p -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)

    t is the parameter's own step count (every step it has a gradient, even one with no rows).
    Rows no gradient touches keep their moments: nothing decays between their updates.
    See docs/sparse.md; ``Adam`` takes row-sparse gradients too, with its own options.
    """

    rule = "sparse_adam"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, betas=as_betas(betas), eps=eps, maximize=maximize)
        super().__init__(params, defaults, **options)
