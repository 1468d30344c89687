"""What happens to a gradient before an update rule sees it, shared by both backends."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GradTransform:
    """Clamp to [lo, hi] (value clipping), then multiply by scale (-1 for maximize, times the
    norm-clipping coefficient). Mirrors fusedopt::GradTransform in cpp/include/fusedopt/rule.hpp."""

    scale: float = 1.0
    lo: float = -math.inf
    hi: float = math.inf

    def apply(self, g: np.ndarray) -> np.ndarray:
        t = g.dtype.type
        if self.lo != -math.inf or self.hi != math.inf:
            g = np.clip(g, t(self.lo), t(self.hi))
        out: np.ndarray = g * t(self.scale)
        return out
