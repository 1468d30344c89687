"""examples/mlp_digits_precision.py: bfloat16 parameters, bfloat16 and int8 state train as well
as float32 (a shortened run; the note's 30-epoch figures come from the full one)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("ml_dtypes")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlp_digits_precision.py"


def test_every_precision_trains_as_well_as_float32(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("mlp_digits_precision_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        runs = module.run(["adam", "momentum"], epochs=4)
        text = module.summary(runs)
    finally:
        sys.modules.pop(spec.name, None)
        sys.modules.pop("mlp_digits", None)
    for name, by in runs.items():
        base = by["float32"].final_acc
        assert base > 0.9, f"{name}: float32 accuracy {base:.2%}"
        for precision, hist in by.items():
            assert abs(hist.final_acc - base) <= 0.02, f"{name} {precision}: {hist.final_acc:.2%} vs {base:.2%}"
    assert "int8 state" in text and "bf16 params" in text
