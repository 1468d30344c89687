"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"); torch has none."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Betas, as_betas, Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Lion(Optimizer):
    """Lion, following the paper's Algorithm 2 with decoupled weight decay::

        c = lerp(m, g, 1 - beta1)                  # beta1*m + (1 - beta1)*g
        p = p * (1 - lr*weight_decay) - lr * sign(c)
        m = lerp(m, g, 1 - beta2)

    One state array and a sign update: the fewest bytes per parameter of the adaptive family.
    The paper suggests an lr 3-10x smaller than AdamW's and a weight decay 3-10x larger.
    """

    rule = "lion"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-4,
        betas: Betas = (0.9, 0.99),
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, betas=as_betas(betas), weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)
