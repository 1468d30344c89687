"""Layer-wise trust-ratio optimizers (LAMB, LARS): each array's step is scaled by the ratio of its
parameter's norm to its update's norm, computed by a reduction pass inside the one native step.
Both follow pytorch_optimizer's ``Lamb`` and ``LARS`` (the packages' defaults and options)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Betas, as_betas, Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Lamb(Optimizer):
    """LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning"), as
    pytorch_optimizer's ``Lamb`` computes it, per array::

        m = beta1*m + beta3*g            # beta3 = 1 - beta1 (grad_averaging), else 1
        v = beta2*v + (1 - beta2)*g*g
        p *= 1 - weight_decay*lr         # weight_decouple (fixed_decay: 1 - weight_decay)
        u = m / (sqrt(v) + eps)          # + weight_decay*p when not weight_decouple
        trust = min(|p|, max_weight_norm) / (|u| + eps)    # 1 where a norm is 0, or adam=True
        p += -(lr / (1 - beta1^t)) * trust * u              # lr alone with adam_debias=True

    The norms are float64 sums over the whole array (one reduction pass in the native step; the
    same bits at any thread count), rounded to the array's dtype as pytorch_optimizer's tensors
    are. Its ``rectify``, ``pre_norm`` and AdaNorm variants are not offered (``max_grad_norm=``
    clips gradients before the step, torch's way).
    """

    rule = "lamb"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        betas: Betas = (0.9, 0.999),
        weight_decay: Hyper = 0.0,
        weight_decouple: bool = True,
        fixed_decay: bool = False,
        grad_averaging: bool = True,
        adam: bool = False,
        eps: Hyper = 1e-6,
        *,
        adam_debias: bool = False,
        max_weight_norm: Hyper = 10.0,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=as_betas(betas),
            eps=eps,
            weight_decay=weight_decay,
            weight_decouple=weight_decouple,
            fixed_decay=fixed_decay,
            grad_averaging=grad_averaging,
            adam_debias=adam_debias,
            adam=adam,
            max_weight_norm=max_weight_norm,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

class LARS(Optimizer):
    """LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"), as
    pytorch_optimizer's ``LARS`` computes it. For parameters of 2 or more dimensions::

        trust = trust_coefficient*|p| / (|g| + weight_decay*|p|)   # 1 unless |p| > 0 and that sum > 0
        d = (g + weight_decay*p) * trust

    0-d and 1-D parameters (biases, normalization scales) take plain SGD steps, ``d = g``, with
    no weight decay and no scaling, as in pytorch_optimizer. Then, for all::

        buf = momentum*buf + (1 - dampening)*d         # momentum > 0; buf starts at zero
        d = d + momentum*buf (nesterov) or buf
        p += -lr * d

    The norms are float64 sums over each array (a reduction pass inside the one native step; the
    same bits at any thread count), rounded to the array's dtype as pytorch_optimizer's tensors are.
    """

    rule = "lars"

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        weight_decay: Hyper = 0.0,
        momentum: Hyper = 0.9,
        dampening: Hyper = 0.0,
        trust_coefficient: Hyper = 1e-3,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        **options: Unpack[StepOptions],
    ) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, dampening=dampening,
                        trust_coefficient=trust_coefficient, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, **options)
