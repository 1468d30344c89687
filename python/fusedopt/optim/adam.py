"""Adam and AdamW (torch.optim.Adam / torch.optim.AdamW)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from typing_extensions import Unpack

from ._types import Betas, as_betas, Hyper, ParamsLike, StepOptions
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam as torch.optim.Adam computes it (order of operations included)::

        g = -g if maximize
        decoupled: p *= 1 - lr*weight_decay    else: g += weight_decay * p
        m = lerp(m, g, 1 - beta1);  v = beta2*v + (1 - beta2)*g*g
        amsgrad: vmax = max(vmax, v) and v = vmax          (max over the raw second moment)
        p -= lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)   # eps outside the sqrt

    The step count t is an exact integer (torch's float32 counter stops at 2^24).

    ``eps_mode="hat"`` switches to the epsilon-hat form of Kingma & Ba (end of section 2) that
    Keras (``keras.optimizers.Adam``), TensorFlow 1 (``tf.train.AdamOptimizer``) and
    scikit-learn (``MLPClassifier(solver="adam")``) compute, so their runs can be reproduced::

        p -= lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)   # eps not bias-corrected

    (their default eps differs too: 1e-7 in Keras, 1e-8 in TF1 and scikit-learn). With the
    default ``"torch"`` eps is added to sqrt(v)/sqrt(1 - beta2^t), as torch, optax and PyTorch
    ports do; the two agree when eps is negligible next to sqrt(v). Everything else (weight
    decay, amsgrad, maximize) is unchanged by the switch.
    """

    rule = "adam"
    _decoupled_default = False

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool | None = None,
        eps_mode: Literal["torch", "hat"] = "torch",
        **options: Unpack[StepOptions],
    ) -> None:
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled_default
        defaults = dict(
            lr=lr,
            betas=as_betas(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
            eps_mode=eps_mode,
        )
        super().__init__(params, defaults, **options)

class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as torch.optim.AdamW:
    ``p *= 1 - lr*weight_decay`` before the Adam update; weight_decay defaults to 1e-2. ``eps_mode``
    as in :class:`Adam` (``"hat"``: Keras' AdamW)."""

    _decoupled_default = True

    def __init__(
        self,
        params: ParamsLike | None = None,
        lr: Hyper = 1e-3,
        betas: Betas = (0.9, 0.999),
        eps: Hyper = 1e-8,
        weight_decay: Hyper = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        eps_mode: Literal["torch", "hat"] = "torch",
        **options: Unpack[StepOptions],
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True,
            eps_mode=eps_mode, **options
        )
