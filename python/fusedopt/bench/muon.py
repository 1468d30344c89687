"""``--muon``: Muon steps on 2-D float32 parameters, fusedopt (bfloat16 and float32
Newton-Schulz) against torch.optim.Muon. A Muon step is dominated by its 15 matrix products
(5 Newton-Schulz iterations of 3), so it is timed per step here rather than in the per-parameter
tables (whose layouts are 1-D arrays, which Muon refuses)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import fusedopt

from .timing import Contender, measure

SHAPES = ((256, 256), (1024, 1024), (512, 2048))
QUICK_SHAPES = ((256, 256), (512, 1024))


def _stepper(opt: Any, grads: list[np.ndarray]) -> Callable[[], None]:
    return lambda: opt.step(grads)


def muon_compare(cfg: dict[str, Any], tick: Callable[[], Any], torch: Any, quick: bool) -> dict[str, Any]:
    """Per shape: seconds per step of each contender (medians)."""
    rows = []
    for shape in QUICK_SHAPES if quick else SHAPES:
        rng = np.random.default_rng(0)
        p0 = rng.standard_normal(shape, dtype=np.float32)
        g = [rng.standard_normal(shape, dtype=np.float32)]
        contenders = []
        keep = []
        for name in ("bfloat16", "float32"):
            opt = fusedopt.Muon([p0.copy()], lr=1e-3, ns_dtype=name)
            keep.append(opt)
            contenders.append(Contender(name, _stepper(opt, g)))
        if torch is not None:
            tp = torch.from_numpy(p0.copy())
            tp.grad = torch.from_numpy(g[0].copy())
            topt = torch.optim.Muon([tp], lr=1e-3)
            contenders.append(Contender("torch", topt.step, keep=(tp, topt)))
        st = measure(contenders, max(3, cfg["repeats"] // 3), cfg["min_time"])
        rows.append({"shape": list(shape), **{k: v.median for k, v in st.items()}})
        tick()
    return {"rows": rows}
