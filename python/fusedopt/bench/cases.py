"""What the benchmark runs: optimizer cases (with their memory-access pattern and torch
counterpart) and array layouts (sizes, dtypes, many small arrays, the flat arena).

The memory-traffic probe (``fusedopt._core.Probe``, prepared once per contender) reads and
writes exactly what an optimizer's kernel reads and writes, with trivial arithmetic:
``pattern`` is the number of arrays per parameter that are read *and* written (the parameter
plus its state arrays); the gradient is read only. Bytes moved per parameter =
(2 * pattern + 1) * itemsize; e.g. float32 Adam: p, m, v read and written, g read:
7 x 4 B = 28 B.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """One optimizer configuration."""

    key: str                      # row label, e.g. "Adam" or "SGD+mom"
    cls: str                      # fusedopt class name
    kwargs: Mapping[str, Any]     # hyperparameters (valid for fusedopt and, if torch_cls, for torch)
    pattern: int                  # arrays read+written per parameter (1-4): the probe's `written` lists
    torch_cls: str | None = None  # torch.optim class with the same arguments (None: torch has none)
    torch_fused: bool = False     # torch 2.13 has fused=True for it on CPU
    warmup_steps: int = 2         # steps before timing (RAdam: past its un-rectified first steps)
    variant: bool = False         # an option variant of another row (not a separate optimizer)

    def bytes_per_param(self, itemsize: int) -> int:
        return (2 * self.pattern + 1) * itemsize


CASES: tuple[Case, ...] = (
    Case("SGD", "SGD", {"lr": 1e-2}, 1, "SGD", True),
    Case("SGD+mom", "SGD", {"lr": 1e-2, "momentum": 0.9}, 2, "SGD", True, variant=True),
    Case("Adagrad", "Adagrad", {"lr": 1e-2}, 2, "Adagrad", True),
    Case("RMSprop", "RMSprop", {"lr": 1e-3}, 2, "RMSprop", False),  # p + square_avg (issue 8 says 3: it is 2)
    Case("RMSprop+c+m", "RMSprop", {"lr": 1e-3, "momentum": 0.9, "centered": True}, 4, "RMSprop", False,
         variant=True),
    Case("Adam", "Adam", {"lr": 1e-3}, 3, "Adam", True),
    Case("Adam+ams", "Adam", {"lr": 1e-3, "amsgrad": True}, 4, "Adam", True, variant=True),
    Case("AdamW", "AdamW", {"lr": 1e-3, "weight_decay": 1e-2}, 3, "AdamW", True),
    # Issue 4: global-norm clipping fused into the step (one extra read of the gradients) vs
    # the "Adam" row; torch needs clip_grad_norm_ + a step, so no torch column.
    Case("Adam+clip", "Adam", {"lr": 1e-3, "max_grad_norm": 1.0}, 3, None, False, variant=True),
    Case("Adamax", "Adamax", {"lr": 2e-3}, 3, "Adamax", False),
    Case("NAdam", "NAdam", {"lr": 2e-3}, 3, "NAdam", False),
    Case("RAdam", "RAdam", {"lr": 1e-3}, 3, "RAdam", False, warmup_steps=8),
    Case("Lion", "Lion", {"lr": 1e-4}, 2, None, False),
    Case("Adadelta", "Adadelta", {"lr": 1.0}, 3, "Adadelta", False),
    # Trust-ratio rules: a reduction pass reads what the update then reads again.
    Case("Lamb", "Lamb", {"lr": 1e-3, "weight_decay": 1e-2}, 3, None, False),
    Case("SGD-SF", "SGDScheduleFree", {"lr": 1e-2}, 2, None, False),  # p, z
    Case("AdamW-SF", "AdamWScheduleFree", {"lr": 1e-3}, 3, None, False),  # p, z, exp_avg_sq
    Case("Rprop", "Rprop", {"lr": 1e-2}, 3, "Rprop", False),
    Case("ASGD", "ASGD", {"lr": 1e-2}, 2, "ASGD", False),
    Case("Adam+hat", "Adam", {"lr": 1e-3, "eps_mode": "hat"}, 3, None, False, variant=True),
    Case("LARS", "LARS", {"lr": 1e-2, "weight_decay": 1e-4}, 2, None, False),
    # Adafactor on these 1-D layouts: the unfactored path (p, variance); its two reduction
    # passes (|p|; |u|) read p, g and the variance again before the update.
    Case("Adafactor", "Adafactor", {"lr": 1e-2}, 2, "Adafactor", False),
)

# LBFGS has no row: a step is up to max_iter iterations around the user's closure, so a time
# per step would measure the closure (docs/lbfgs.md).

CASE_BY_KEY: dict[str, Case] = {c.key.lower(): c for c in CASES}

# Targets of issue 8 that compare with torch's fused step.
TORCH_FUSED_TARGETS = ("SGD", "SGD+mom", "Adam", "AdamW", "Adagrad")


@dataclass(frozen=True)
class Layout:
    """How a case's parameters are laid out in memory."""

    key: str
    sizes: tuple[int, ...]        # elements of each parameter array
    dtype: Any = np.float32
    arena: bool = False           # one buffer seen as len(sizes) views (fusedopt.FlatParams)
    note: str = field(default="", compare=False)

    @property
    def total(self) -> int:
        return int(sum(self.sizes))

    @property
    def n_arrays(self) -> int:
        return len(self.sizes)

    @property
    def itemsize(self) -> int:
        return int(np.dtype(self.dtype).itemsize)

    @property
    def dtype_name(self) -> str:
        return str(np.dtype(self.dtype).name)

    @property
    def single_f32(self) -> bool:
        """A single float32 array: the size sweep that the plot draws."""
        return self.n_arrays == 1 and not self.arena and self.itemsize == 4


K = 1024
M = 1024 * 1024

LAYOUTS: tuple[Layout, ...] = (
    Layout("1", (1,)),
    Layout("4K", (4 * K,)),
    Layout("4 arrays", (4 * K, 64, 4 * K, 10), note="a small model: two layers' weights and biases"),
    Layout("64K", (64 * K,)),
    Layout("256K", (256 * K,)),
    Layout("1M", (1 * M,)),
    Layout("4M", (4 * M,)),
    Layout("32M", (32 * M,)),
    Layout("1M f64", (1 * M,), np.float64),
    Layout("1000x1000", (1000,) * 1000),
    Layout("arena 1000x1000", (1000,) * 1000, arena=True),
)
LAYOUT_BY_KEY: dict[str, Layout] = {lay.key.lower(): lay for lay in LAYOUTS}

QUICK_LAYOUTS: tuple[str, ...] = ("1", "4K", "4 arrays", "256K", "1M", "1000x1000", "arena 1000x1000")


def select_cases(spec: str | None) -> list[Case]:
    """Comma-separated case keys (case-insensitive); None or 'all' for every case."""
    if not spec or spec.strip().lower() == "all":
        return list(CASES)
    out = []
    for name in spec.split(","):
        name = name.strip().lower()
        if name not in CASE_BY_KEY:
            raise ValueError(f"unknown optimizer case {name!r}; choose from {', '.join(c.key for c in CASES)}")
        out.append(CASE_BY_KEY[name])
    return out


def select_layouts(spec: str | None, quick: bool) -> list[Layout]:
    """Comma-separated layout keys; None: every layout (--quick: the quick set, no 32M)."""
    if not spec:
        keys = QUICK_LAYOUTS if quick else tuple(lay.key for lay in LAYOUTS)
        return [LAYOUT_BY_KEY[k.lower()] for k in keys]
    out = []
    for name in spec.split(","):
        name = name.strip().lower()
        if name not in LAYOUT_BY_KEY:
            raise ValueError(f"unknown layout {name!r}; choose from {', '.join(lay.key for lay in LAYOUTS)}")
        out.append(LAYOUT_BY_KEY[name])
    return out
