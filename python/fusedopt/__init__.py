"""fusedopt: fused SIMD/OpenMP optimizer steps for NumPy arrays, with torch.optim's semantics.

    import fusedopt as fo
    opt = fo.AdamW({"W": w, "b": b}, lr=3e-4, weight_decay=0.01, max_grad_norm=1.0)
    opt.step({"W": dw, "b": db})          # arrays updated in place, one native call
"""

from . import distributed, init, interop, reference, schedules, swa_utils
from . import runtime as _runtime
from ._core import runtime_info as _native_info
from .clip import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .flat import FlatParams
from .sparse import RowSparse
from .swa_utils import AveragedModel, get_ema_multi_avg_fn, get_swa_multi_avg_fn
from .optim import *  # noqa: F403
from .optim import __all__ as _optim_all
from .runtime import (
    get_flush_denormal,
    get_num_threads,
    get_target,
    runtime_info,
    set_flush_denormal,
    set_num_threads,
    set_target,
    show_runtime,
)

__version__: str = _native_info()["version"]

_runtime._apply_environment()

__all__ = [
    *_optim_all,
    "AveragedModel",
    "FlatParams",
    "RowSparse",
    "get_ema_multi_avg_fn",
    "get_swa_multi_avg_fn",
    "swa_utils",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "distributed",
    "get_total_norm",
    "init",
    "interop",
    "reference",
    "schedules",
    "get_flush_denormal",
    "get_num_threads",
    "get_target",
    "runtime_info",
    "set_flush_denormal",
    "set_num_threads",
    "set_target",
    "show_runtime",
]
