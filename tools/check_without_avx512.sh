#!/usr/bin/env bash
# Imports fusedopt and steps every optimizer on a CPU without AVX-512: valgrind's, which runs
# AVX2 but not AVX-512. Code compiled for a target must run only where that target is supported
# (dispatch.cpp); an AVX-512 instruction reached at import or in a step is SIGILL here.
set -euo pipefail
if ! command -v valgrind >/dev/null; then
    echo "check_without_avx512: valgrind not installed, skipped"
    exit 0
fi
# The interpreter itself, not a launcher script (pyenv's shim execs it, out of valgrind's sight).
python_exe=$(python -c "import sys; print(sys.executable)")
valgrind --tool=none --trace-children=yes --error-exitcode=3 "$python_exe" - <<'PY'
import numpy as np

import fusedopt as fo
from fusedopt.optim import __all__ as names

info = fo.runtime_info()
assert "avx512" not in info["supported_targets"], info["supported_targets"]
stepped = []
for name in names:
    cls = getattr(fo, name)
    if not isinstance(cls, type) or not issubclass(cls, fo.Optimizer) or cls is fo.Optimizer:
        continue
    p = [np.ones(70_000, np.float32), np.ones(33, np.float64)]
    try:
        opt = cls(p, lr=1e-3)
        for _ in range(2):
            opt.step([np.full(70_000, 0.5, np.float32), np.full(33, 0.5, np.float64)])
    except (TypeError, ValueError):
        continue  # needs more than dense gradients of 1-D arrays (a wrapper, a closure, 2-D, sparse)
    stepped.append(name)
assert len(stepped) >= 9, stepped
fo.clip_grad_norm_(p, 1.0)
# 16-bit storage: the AVX2 vector loops and the scratch path (a tail of 7 elements)
import ml_dtypes

for dtype, state in ((np.float32, "bfloat16"), (ml_dtypes.bfloat16, None), (np.float16, "bfloat16")):
    q = [np.ones(1031, dtype)]
    opt = fo.Adam(q, lr=1e-2, state_dtype=state, stochastic_rounding=dtype is ml_dtypes.bfloat16)
    opt.step([np.full(1031, 0.5, dtype)])
    assert (q[0].astype(np.float32) < 1.0).all(), (dtype, state)
print(f"check_without_avx512: {len(stepped)} optimizers stepped on", info["active_target"])
PY
