#!/usr/bin/env python
"""Regenerate the torch-parity golden trajectories in tests/data/.

Runs torch 2.13 (CPU, the default single-tensor for-loop implementation) on
every case of tests/parity/cases.py and writes

    tests/data/parity_<optimizer>.npz   one file per optimizer
    tests/data/parity_clip.npz          clip_grad_norm_ / clip_grad_value_ / get_total_norm
    tests/data/parity_schedulers.npz    every lr_scheduler class driving an optimizer
    tests/data/parity_sparse.npz        row-sparse gradients (parity/sparse_cases.py)
    tests/data/parity_lbfgs.npz         LBFGS iterates (parity/lbfgs_cases.py)
    tests/data/parity_muon.npz          Muon parameters and momentum (parity/muon_cases.py)

The default test command compares fusedopt against these files without torch.

Usage:  python tools/make_parity_golden.py [--check] [--only SGD,Adam]
  --check  regenerate in memory and compare with the files on disk (exit 1 on
           any difference) instead of writing.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from parity import cases, lbfgs_cases, muon_cases, sparse_cases

REQUIRED_TORCH = "2.13.0"


def _meta(torch) -> np.ndarray:
    return np.array(
        json.dumps(
            {
                "format": cases.GOLDEN_FORMAT,
                "torch": torch.__version__,
                "numpy": np.__version__,
                "n_steps": cases.N_STEPS,
                "shapes": cases.SHAPES,
            },
            sort_keys=True,
        )
    )


def optimizer_arrays(torch, optimizer: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"__meta__": _meta(torch)}
    for case in cases.cases_for(optimizer):
        init, grads = case.stream()
        snaps = cases.run_torch_case(case, init, grads)
        out.update(cases.pack_case(case, init, grads, snaps))
    return out


def clip_arrays(torch) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"__meta__": _meta(torch)}
    for case in cases.CLIP_CASES:
        grads = case.grads()
        norm, clipped = cases.run_torch_clip(case, grads)
        out[f"{case.id}.grads"] = np.concatenate([g.reshape(-1) for g in grads])
        out[f"{case.id}.out"] = np.concatenate([g.reshape(-1) for g in clipped])
        out[f"{case.id}.norm"] = np.array(np.nan if norm is None else norm, dtype=np.float64)
    return out


def sched_arrays(torch) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"__meta__": _meta(torch)}
    for case in cases.SCHED_CASES:
        init, grads = case.stream()
        hp, ps = cases.run_torch_sched(case, init, grads)
        out[f"{case.id}.config"] = np.array(case.config_json())
        out[f"{case.id}.hparams"] = hp
        out[f"{case.id}.params"] = ps.astype(case.dtype)
    return out


def _bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _same(path: Path, arrays: dict[str, np.ndarray]) -> list[str]:
    if not path.exists():
        return [f"{path.name}: missing"]
    diffs = []
    with np.load(path) as old:
        keys = set(old.files) | set(arrays)
        for k in sorted(keys):
            if k == "__meta__":
                continue
            if k not in old.files or k not in arrays:
                diffs.append(f"{path.name}:{k}: only in {'new' if k in arrays else 'old'}")
            elif not np.array_equal(old[k], arrays[k], equal_nan=arrays[k].dtype.kind == "f"):
                diffs.append(f"{path.name}:{k}: differs")
    return diffs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the files on disk instead of writing")
    ap.add_argument("--only", default="", help="comma-separated subset: optimizer names, 'clip', 'schedulers'")
    args = ap.parse_args(argv)

    import torch

    if torch.__version__.split("+")[0] != REQUIRED_TORCH:
        print(f"error: golden data must come from torch {REQUIRED_TORCH}, found {torch.__version__}", file=sys.stderr)
        return 2
    torch.set_default_dtype(torch.float32)  # step / mu_product tensors are float32, as in the default setup
    torch.set_num_threads(1)

    only = {s.strip().lower() for s in args.only.split(",") if s.strip()}
    jobs = [(cases.golden_path(o), lambda o=o: optimizer_arrays(torch, o)) for o in cases.OPTIMIZERS]
    jobs += [(cases.CLIP_GOLDEN, lambda: clip_arrays(torch)), (cases.SCHED_GOLDEN, lambda: sched_arrays(torch))]
    jobs += [(sparse_cases.GOLDEN_PATH, lambda: sparse_cases.golden_arrays(torch))]  # row-sparse gradients
    jobs += [(lbfgs_cases.GOLDEN_PATH, lambda: lbfgs_cases.golden_arrays(torch)),  # steps in Python (closures,
             (muon_cases.GOLDEN_PATH, lambda: muon_cases.golden_arrays(torch))]    # matrix products)

    cases.DATA_DIR.mkdir(parents=True, exist_ok=True)
    diffs: list[str] = []
    total = 0
    for path, make in jobs:
        tag = path.stem.removeprefix("parity_")
        if only and tag not in only:
            continue
        arrays = make()
        if args.check:
            diffs += _same(path, arrays)
            continue
        data = _bytes(arrays)
        path.write_bytes(data)
        total += len(data)
        n = sum(1 for k in arrays if k.endswith((".config", ".norm", "/params", "/p0")))
        print(f"wrote {path.relative_to(ROOT)}: {n} cases, {len(data) / 1024:.1f} KiB")
    if args.check:
        for d in diffs:
            print(d)
        print("golden data up to date" if not diffs else f"{len(diffs)} differences")
        return 1 if diffs else 0
    print(f"total {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
