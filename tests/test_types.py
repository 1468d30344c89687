"""The signatures' types catch what users get wrong (mypy on a snippet of typical mistakes)."""

from __future__ import annotations

import os

import pytest

SNIPPET = """
import numpy as np
import fusedopt as fo
p = [np.zeros(3, np.float32)]
fo.Adam(p, lr="oops")
fo.SGD(p, lr=0.1).step(3)
fo.AdamW(p, foreach=True)
fo.Adam(p, lr=lambda t: 0.1 / (t + 1), betas=(0.9, lambda t: 0.999), max_grad_norm=1.0, nonfinite="skip")
fo.RMSprop({"w": np.zeros(3)}, lr=1e-3, backend="numpy").step({"w": np.ones(3)})
"""


@pytest.mark.skipif(bool(os.environ.get("FUSEDOPT_SANITIZED_PACKAGE")),
                    reason="the sanitizer run checks fusedopt's native code, not mypy's")
def test_mypy_catches_the_usual_mistakes(tmp_path) -> None:
    api = pytest.importorskip("mypy.api")
    path = tmp_path / "snippet.py"
    path.write_text(SNIPPET)
    out, _, _ = api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in errors] == [5, 6, 7], out
    assert 'incompatible type "str"; expected "float | Callable[[int], float]"' in errors[0]
    assert 'Unexpected keyword argument "foreach" for "AdamW"' in errors[2]
