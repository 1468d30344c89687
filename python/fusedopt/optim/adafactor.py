"""torch.optim.Adafactor (Shazeer & Stern 2018, torch 2.13's variant)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Adafactor(Optimizer):
    """Adafactor as torch.optim.Adafactor computes it (torch/optim/_adafactor.py), at step t::

        rho = min(lr, 1/sqrt(t));  alpha = max(eps2, RMS(p)) * rho
        p *= 1 - lr*weight_decay
        >= 2-D: row_var = lerp(row_var, mean(g^2 over the last dim), t^beta2_decay)
                col_var = lerp(col_var, mean(g^2 over dim -2), t^beta2_decay)
                var = row_var @ col_var / max(mean(row_var over dim -2), eps1)
        else:   variance = lerp(variance, g^2, t^beta2_decay);  var = variance
        u = g / sqrt(max(var, eps1^2))
        p -= alpha / max(1, RMS(u)/d) * u

    The second moment of a matrix (of each matrix of the last two dimensions) is kept as a row
    and a column vector (``row_var`` of shape ``shape[:-1] + (1,)``, ``col_var`` of
    ``shape[:-2] + (1, shape[-1])``, as torch keeps them); such parameters must be C-ordered
    (ValueError otherwise). ``eps1=None`` (the default) means the machine epsilon of the dtype of
    the group's first parameter that steps, as in torch. The RMS values and the row/column sums
    are float64 reductions inside the one native step (same bits at any thread count); the rest
    follows torch's operations. bfloat16/float16 parameters are refused (docs/reductions.md).
    """

    rule = "adafactor"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-2,
        beta2_decay: Hyper = -0.8,
        eps: tuple[float | None, Hyper] = (None, 1e-3),
        d: Hyper = 1.0,
        weight_decay: Hyper = 0.0,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=tuple(eps) if isinstance(eps, list) else eps, d=d,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)
