"""Rprop (torch.optim.Rprop)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Rprop(Optimizer):
    """Resilient backpropagation (Riedmiller & Braun 1993) as torch.optim.Rprop computes it,
    per element, from the signs of the gradient alone::

        g = -g if maximize
        s = sign(g * prev):  > 0 -> etaplus,  < 0 -> etaminus,  0 -> 1
        step_size = clamp(step_size * s, step_sizes[0], step_sizes[1])   # starts at lr
        g = 0 where s == etaminus        # the sign flipped: no move this step, and prev = 0
        p -= sign(g) * step_size;  prev = g

    lr only sets the initial step sizes (a later change of lr does nothing, as in torch). No
    weight decay. Meant for full-batch gradients: mini-batch noise flips signs at random.
    ``etas`` must satisfy 0 < etaminus < 1 < etaplus, ``step_sizes`` 0 <= min <= max.
    """

    rule = "rprop"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-2,
        etas: tuple[Hyper, Hyper] = (0.5, 1.2),
        step_sizes: tuple[Hyper, Hyper] = (1e-6, 50.0),
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(
            lr=lr,
            etas=tuple(etas) if isinstance(etas, list) else etas,
            step_sizes=tuple(step_sizes) if isinstance(step_sizes, list) else step_sizes,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)
