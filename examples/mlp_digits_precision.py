#!/usr/bin/env python
"""Fewer bytes per parameter, same accuracy: the MLP of ``mlp_digits.py`` trained with each
optimizer four times (same weights, batches and schedule):

* float32 parameters and state (the baseline);
* bfloat16 parameters with float32 master weights (``master_weights=True``): the forward and
  backward passes read the bfloat16 weights, the gradients are bfloat16;
* float32 parameters with bfloat16 state (``state_dtype="bfloat16"``);
* float32 parameters with int8 state (``state_dtype="int8"``, block-wise 8-bit).

    python examples/mlp_digits_precision.py                      # adam, adamw, momentum, rmsprop, adagrad
    python examples/mlp_digits_precision.py --optimizers adam --epochs 10

Prints each run's test accuracy and its difference from float32, and writes
``mlp_digits_precision.png`` (test accuracy curves) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import fusedopt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mlp_digits import OPTIMIZERS, Data, History, evaluate, init_params, load_data, loss_and_grads, make_scheduler  # noqa: E402

# name -> (optimizer options, parameters in bfloat16)
PRECISIONS: dict[str, tuple[dict[str, Any], bool]] = {
    "float32": ({}, False),
    "bf16 params": ({"master_weights": True}, True),
    "bf16 state": ({"state_dtype": "bfloat16"}, False),
    "int8 state": ({"state_dtype": "int8"}, False),
}
DEFAULT = "adam,adamw,momentum,rmsprop,adagrad"


def train(name: str, precision: str, data: Data, epochs: int, batch_size: int = 32, hidden: int = 64,
          seed: int = 0) -> History:
    import ml_dtypes

    cls_name, kwargs = OPTIMIZERS[name]
    options, low = PRECISIONS[precision]
    params = init_params(data.X_train.shape[1], hidden, 10, seed, np.float32)
    if low:
        params = {k: v.astype(ml_dtypes.bfloat16) for k, v in params.items()}
    opt = getattr(fusedopt, cls_name)(params, **kwargs, **options)
    scheduler = make_scheduler("cosine", opt, epochs)
    hist = History(f"{name} {precision}", precision)
    rng = np.random.default_rng(seed + 1)  # the same batches for every run
    n = len(data.y_train)
    for _ in range(epochs):
        hist.lr.append(float(opt.param_groups[0]["lr"]))
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            wide = {k: v.astype(np.float32) for k, v in params.items()}  # (float32: no copy needed, harmless)
            loss, grads = loss_and_grads(wide, data.X_train[idx], data.y_train[idx])
            opt.step({k: g.astype(params[k].dtype) for k, g in grads.items()})
            total += loss * len(idx)
        if scheduler is not None:
            scheduler.step()
        hist.train_loss.append(total / n)
        test_loss, acc = evaluate({k: v.astype(np.float32) for k, v in params.items()}, data.X_test, data.y_test)
        hist.test_loss.append(test_loss)
        hist.test_acc.append(acc)
    return hist


def run(names: list[str], epochs: int, seed: int = 0) -> dict[str, dict[str, History]]:
    data = load_data(seed)
    return {name: {prec: train(name, prec, data, epochs, seed=seed) for prec in PRECISIONS} for name in names}


def summary(runs: dict[str, dict[str, History]]) -> str:
    lines = [f"{'optimizer':<10}" + "".join(f"{p:>22}" for p in PRECISIONS)]
    for name, by in runs.items():
        base = by["float32"].final_acc
        cells = [f"{h.final_acc:>8.2%} ({100 * (h.final_acc - base):+5.2f} pt)" if p != "float32"
                 else f"{h.final_acc:>22.2%}" for p, h in by.items()]
        lines.append(f"{name:<10}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def plot(runs: dict[str, dict[str, History]], path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(runs), 3.6), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    for ax, (name, by) in zip(axes, runs.items()):
        for prec, h in by.items():
            ax.plot(range(1, len(h.test_acc) + 1), [100 * a for a in h.test_acc], label=prec)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(90, 100)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--optimizers", default=DEFAULT, help=f"comma-separated (default {DEFAULT})")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="mlp_digits_out", help="directory for mlp_digits_precision.png")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    names = [s.strip() for s in args.optimizers.split(",") if s.strip()]
    bad = [s for s in names if s not in OPTIMIZERS or OPTIMIZERS[s][0] == "Muon"]
    if bad or args.epochs < 1:
        p.error(f"unknown optimizer(s) {bad}; choose from {', '.join(OPTIMIZERS)}" if bad else "--epochs must be >= 1")
    runs = run(names, args.epochs, args.seed)
    print(summary(runs))
    if not args.no_plot:
        print(f"wrote {plot(runs, Path(args.out) / 'mlp_digits_precision.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
