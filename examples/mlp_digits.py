#!/usr/bin/env python
"""Train a two-layer MLP, written in plain NumPy, on scikit-learn's digits with fusedopt.

The digits data set (1,797 8x8 images of handwritten digits) ships inside
scikit-learn, so nothing is downloaded. The network is

    x (64 pixels) -> Linear(64 -> 64) -> ReLU -> Linear(64 -> 10) -> softmax

with the forward and backward passes written out by hand below, weights from
``fusedopt.init`` (Kaiming for the ReLU layer, Xavier for the output layer),
and one fusedopt optimizer updating all four arrays in place per mini-batch.
Every optimizer gets the same initial weights, the same mini-batches and a
cosine learning-rate schedule (``fusedopt.schedules.CosineAnnealingLR``,
stepped once per epoch). Beyond the default line-up (``--optimizers``):
Adadelta, ASGD, LAMB and LARS (layer-wise trust ratios), Muon on the weight
matrices with AdamW on the biases, Schedule-Free SGD and AdamW (no schedule;
evaluated at their average after ``eval()``), Lookahead around Adam, Adam
evaluated on an exponential moving average of its weights
(``fusedopt.AveragedModel``), and, full batch, Rprop and L-BFGS.

    pip install "fusedopt[examples]"     # scikit-learn, tqdm, matplotlib
    python examples/mlp_digits.py                         # all optimizers
    python examples/mlp_digits.py --optimizers adam,sgd --epochs 10
    python examples/mlp_digits.py --schedule none --no-plot

Prints the loss and test accuracy per epoch, a summary table, and writes
``mlp_digits.png`` (loss, accuracy and learning-rate curves) to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fusedopt
import numpy as np
from fusedopt import init

# --------------------------------------------------------------------------- #
# optimizers: fusedopt class and settings that work well on this problem
# --------------------------------------------------------------------------- #
FULL_BATCH_STEPS = 10  # Rprop steps, or LBFGS iterations, per epoch
OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "sgd": ("SGD", dict(lr=0.1)),
    "momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "nesterov": ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    "adam": ("Adam", dict(lr=3e-3)),
    "adamw": ("AdamW", dict(lr=3e-3, weight_decay=1e-2)),
    "nadam": ("NAdam", dict(lr=3e-3)),
    "radam": ("RAdam", dict(lr=1e-2)),  # RAdam's rectifier warms up over ~1000 steps
    "adamax": ("Adamax", dict(lr=1e-2)),
    "rmsprop": ("RMSprop", dict(lr=3e-3)),
    "adagrad": ("Adagrad", dict(lr=0.05)),
    "lion": ("Lion", dict(lr=1e-3, weight_decay=0.1)),
    "adadelta": ("Adadelta", dict(lr=1.0)),
    "asgd": ("ASGD", dict(lr=0.1)),
    # Muon for the weight matrices, AdamW (lr 3e-3) for the biases (MuonAndAdamW below)
    "muon": ("Muon", dict(lr=0.02, adjust_lr_fn="match_rms_adamw", weight_decay=1e-2)),
    # layer-wise trust ratios: each array's step scaled by |p| / |update|
    "lamb": ("Lamb", dict(lr=1e-2, weight_decay=1e-2)),
    "lars": ("LARS", dict(lr=1.0, momentum=0.9, trust_coefficient=0.02, weight_decay=1e-4)),
    # no schedule (its own averaging replaces it): evaluated at x, after eval()
    "sgd_sf": ("SGDScheduleFree", dict(lr=0.1, momentum=0.9, warmup_steps=20)),
    "adamw_sf": ("AdamWScheduleFree", dict(lr=3e-3, weight_decay=1e-2, warmup_steps=20)),
    "lookahead": ("Lookahead(Adam)", dict(lr=3e-3, k=5, alpha=0.5)),
    # Adam, evaluated on an exponential moving average of its weights
    "ema": ("Adam+EMA", dict(lr=3e-3, decay=0.95)),
    # full batch (what they are for): FULL_BATCH_STEPS steps per epoch on all training images
    "rprop": ("Rprop", dict(lr=1e-3)),
    "lbfgs": ("LBFGS", dict(lr=1.0, max_iter=FULL_BATCH_STEPS, history_size=20, line_search_fn="strong_wolfe")),
}
DEFAULT_OPTIMIZERS = "sgd,momentum,nesterov,adam,adamw,rmsprop,adagrad,nadam,radam,adamax,lion"
SCHEDULE_FREE = ("SGDScheduleFree", "AdamWScheduleFree")
NO_SCHEDULE = SCHEDULE_FREE + ("LBFGS",)  # the lr schedule is theirs (or, for LBFGS, the line search)
SCHEDULES = ("cosine", "step", "exponential", "none")


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #
@dataclass
class Data:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def load_data(seed: int = 0, dtype: Any = np.float32, test_size: float = 0.25) -> Data:
    """Digits, split with a fixed seed (stratified), standardised with the
    training set's mean and std."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y
    )
    mean = X_tr.mean(axis=0)
    std = X_tr.std(axis=0)
    std[std == 0] = 1.0  # corner pixels are always 0
    return Data(
        ((X_tr - mean) / std).astype(dtype), y_tr,
        ((X_te - mean) / std).astype(dtype), y_te,
    )


# --------------------------------------------------------------------------- #
# the model: parameters in a dict, forward and backward by hand
# --------------------------------------------------------------------------- #
def init_params(
    n_in: int, n_hidden: int, n_out: int, seed: int, dtype: Any
) -> dict[str, np.ndarray]:
    """Weights are (out_features, in_features), torch's layout: a layer is x @ W.T + b."""
    rng = np.random.default_rng(seed)
    W1 = init.kaiming_normal(np.empty((n_hidden, n_in), dtype), nonlinearity="relu", rng=rng)
    W2 = init.xavier_uniform(np.empty((n_out, n_hidden), dtype), rng=rng)
    return {
        "W1": W1, "b1": np.zeros(n_hidden, dtype),
        "W2": W2, "b2": np.zeros(n_out, dtype),
    }


def forward(params: dict[str, np.ndarray], X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns (hidden activations, logits)."""
    h = np.maximum(X @ params["W1"].T + params["b1"], 0)
    return h, h @ params["W2"].T + params["b2"]


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = len(y)
    loss = -float(log_p[np.arange(n), y].mean())
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), y] -= 1
    return loss, dlogits / n


def loss_and_grads(
    params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray
) -> tuple[float, dict[str, np.ndarray]]:
    h, logits = forward(params, X)
    loss, dlogits = softmax_cross_entropy(logits, y)
    dh = dlogits @ params["W2"]
    dh[h <= 0] = 0  # ReLU
    grads = {
        "W2": dlogits.T @ h,
        "b2": dlogits.sum(axis=0),
        "W1": dh.T @ X,
        "b1": dh.sum(axis=0),
    }
    return loss, grads


def evaluate(params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, accuracy)."""
    _, logits = forward(params, X)
    loss, _ = softmax_cross_entropy(logits, y)
    return loss, float((logits.argmax(axis=1) == y).mean())


# --------------------------------------------------------------------------- #
# training
# --------------------------------------------------------------------------- #
@dataclass
class History:
    name: str
    settings: str
    train_loss: list[float] = field(default_factory=list)  # mean over each epoch's batches
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # learning rate used in each epoch
    seconds: float = 0.0

    @property
    def final_acc(self) -> float:
        return self.test_acc[-1] if self.test_acc else math.nan


def make_scheduler(kind: str, optimizer: Any, epochs: int) -> Any:
    if kind == "none":
        return None
    from fusedopt import schedules

    if kind == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=epochs)
    if kind == "step":
        return schedules.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.3)
    if kind == "exponential":
        return schedules.ExponentialLR(optimizer, gamma=0.05 ** (1 / max(1, epochs)))
    raise ValueError(f"schedule must be one of {SCHEDULES}; got {kind!r}")


def _progress(iterable: Any, enabled: bool, desc: str) -> Any:
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return iterable
        # disable=None: a bar on a terminal, nothing when output is redirected
        return tqdm(iterable, desc=desc, unit="epoch", leave=False, dynamic_ncols=True,
                    disable=None)
    return iterable


def _write(bar: Any, line: str) -> None:
    if hasattr(bar, "write"):
        bar.write(line)
    else:
        print(line, flush=True)


class MuonAndAdamW:
    """Muon on the 2-D weights and AdamW on the biases, as torch's Muon docs advise, seen as one
    optimizer: ``param_groups`` lists both (so a scheduler drives both lrs), ``step`` splits."""

    def __init__(self, params: dict[str, np.ndarray], **muon_kwargs: Any) -> None:
        self.matrices = [k for k, v in params.items() if v.ndim == 2]
        self.muon = fusedopt.Muon({k: params[k] for k in self.matrices}, **muon_kwargs)
        self.adamw = fusedopt.AdamW({k: v for k, v in params.items() if k not in self.matrices},
                                    lr=3e-3, weight_decay=muon_kwargs.get("weight_decay", 0.1))
        self.param_groups = self.muon.param_groups + self.adamw.param_groups

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.muon.step({k: grads[k] for k in self.matrices})
        self.adamw.step({k: g for k, g in grads.items() if k not in self.matrices})


class AdamWithEMA:
    """Adam, and an exponential moving average of the weights (``fusedopt.AveragedModel``, one
    native pass per update) that is what gets evaluated."""

    def __init__(self, params: dict[str, np.ndarray], decay: float = 0.99, **adam_kwargs: Any) -> None:
        self.params = params
        self.adam = fusedopt.Adam(params, **adam_kwargs)
        self.ema = fusedopt.AveragedModel(params, multi_avg_fn=fusedopt.get_ema_multi_avg_fn(decay))
        self.param_groups = self.adam.param_groups

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.adam.step(grads)
        self.ema.update_parameters(self.params)


def make_optimizer(cls_name: str, params: dict[str, np.ndarray], kwargs: dict[str, Any]) -> Any:
    if cls_name == "Muon":
        return MuonAndAdamW(params, **kwargs)
    if cls_name == "Adam+EMA":
        return AdamWithEMA(params, **kwargs)
    if cls_name == "Lookahead(Adam)":
        kw = dict(kwargs)
        k, alpha = kw.pop("k"), kw.pop("alpha")
        return fusedopt.Lookahead(fusedopt.Adam(params, **kw), k=k, alpha=alpha)
    return getattr(fusedopt, cls_name)(params, **kwargs)


@contextmanager
def evaluated(optimizer: Any, params: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """The weights to evaluate: the EMA's, or for Schedule-Free the average x (eval(), then
    train() again), else the parameters."""
    if isinstance(optimizer, AdamWithEMA):
        yield optimizer.ema.params
    elif isinstance(optimizer, (fusedopt.SGDScheduleFree, fusedopt.AdamWScheduleFree)):
        optimizer.eval()
        try:
            yield params
        finally:
            optimizer.train()
    else:
        yield params


def full_batch_epoch(optimizer: Any, params: dict[str, np.ndarray], data: Data) -> float:
    """Rprop: FULL_BATCH_STEPS steps on the whole training set; LBFGS: one step of that many
    iterations (a closure, as its line search evaluates several points). The mean loss over
    the epoch's evaluations."""
    losses: list[float] = []
    if isinstance(optimizer, fusedopt.LBFGS):
        def closure() -> tuple[float, dict[str, np.ndarray]]:
            loss, grads = loss_and_grads(params, data.X_train, data.y_train)
            losses.append(loss)
            return loss, grads

        optimizer.step(closure)
        return sum(losses) / len(losses)
    total = 0.0
    for _ in range(FULL_BATCH_STEPS):
        loss, grads = loss_and_grads(params, data.X_train, data.y_train)
        optimizer.step(grads)
        total += loss
    return total / FULL_BATCH_STEPS


def train(
    name: str,
    data: Data,
    epochs: int = 30,
    batch_size: int = 32,
    hidden: int = 64,
    schedule: str = "cosine",
    seed: int = 0,
    lr: float | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> History:
    """Train a fresh MLP with optimizer ``name`` (a key of OPTIMIZERS)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    cls_name, kwargs = OPTIMIZERS[name]
    kwargs = dict(kwargs)
    if lr is not None:
        kwargs["lr"] = lr
    dtype = data.X_train.dtype
    params = init_params(data.X_train.shape[1], hidden, 10, seed, dtype)
    optimizer = make_optimizer(cls_name, params, kwargs)
    scheduler = make_scheduler("none" if cls_name in NO_SCHEDULE else schedule, optimizer, epochs)
    settings = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in kwargs.items())
    hist = History(name, f"{cls_name}({settings})")
    rng = np.random.default_rng(seed + 1)  # same batches for every optimizer
    n = len(data.y_train)
    t0 = time.perf_counter()
    bar = _progress(range(1, epochs + 1), progress, f"{name:>9}")
    for epoch in bar:
        hist.lr.append(float(optimizer.param_groups[0]["lr"]))
        order = rng.permutation(n)
        total = 0.0
        if cls_name in ("Rprop", "LBFGS"):
            total = full_batch_epoch(optimizer, params, data) * n
        else:
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                loss, grads = loss_and_grads(params, data.X_train[idx], data.y_train[idx])
                optimizer.step(grads)  # updates params' arrays in place
                total += loss * len(idx)
        if scheduler is not None:
            scheduler.step()
        hist.train_loss.append(total / n)
        with evaluated(optimizer, params) as weights:
            test_loss, acc = evaluate(weights, data.X_test, data.y_test)
        hist.test_loss.append(test_loss)
        hist.test_acc.append(acc)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / n:.4f}", acc=f"{acc:.2%}")
        if verbose:
            _write(bar, f"{name:>9}  epoch {epoch:3d}/{epochs}  lr {hist.lr[-1]:.2e}  "
                        f"train loss {total / n:.4f}  test loss {test_loss:.4f}  "
                        f"test acc {acc:.2%}")
    if hasattr(bar, "close"):
        bar.close()
    hist.seconds = time.perf_counter() - t0
    return hist


# --------------------------------------------------------------------------- #
# plot
# --------------------------------------------------------------------------- #
COLORS = {
    "sgd": "#7f7f7f", "momentum": "#1f77b4", "nesterov": "#17becf", "adam": "#d62728",
    "adamw": "#ff7f0e", "nadam": "#e377c2", "radam": "#8c564b", "adamax": "#bcbd22",
    "rmsprop": "#2ca02c", "adagrad": "#9467bd", "lion": "#000000",
    "adadelta": "#aec7e8", "asgd": "#98df8a",
    "muon": "#393b79", "lamb": "#e7ba52", "lars": "#843c39", "sgd_sf": "#5254a3",
    "adamw_sf": "#ad494a", "lookahead": "#ff9896", "ema": "#9c9ede", "rprop": "#c49c94",
    "lbfgs": "#637939",
}


def plot(histories: list[History], path: Path, schedule: str) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.8), dpi=100, layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for h in histories:
        c = COLORS.get(h.name)
        ep = np.arange(1, len(h.train_loss) + 1)
        ax1.semilogy(ep, h.train_loss, color=c, label=h.name, linewidth=1.6)
        ax2.plot(ep, 100 * np.asarray(h.test_acc), color=c,
                 label=f"{h.name}: {h.final_acc:.1%}", linewidth=1.6)
        ax3.plot(ep, h.lr, color=c, label=h.name, linewidth=1.6)
    ax1.set_title("Training loss (mean over each epoch)")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("cross-entropy  (log scale)")
    ax1.grid(True, which="major", alpha=0.3)
    ax1.legend(fontsize=8, ncols=2)
    ax2.set_title("Test accuracy (450 held-out digits)")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(85, 100)
    ax2.axhline(95, color="k", linewidth=0.8, linestyle=":")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8, ncols=2, loc="lower right", title="final accuracy",
               title_fontsize=8)
    by_lr: dict[float, list[str]] = {}
    for h in histories:  # several optimizers share a learning rate: name them on the line
        by_lr.setdefault(h.lr[0], []).append(h.name)
    for lr0, names in by_lr.items():
        ax3.annotate(", ".join(names), xy=(1, lr0), xytext=(0, 3), textcoords="offset points",
                     fontsize=8, va="bottom")
    ax3.set_title(f"Learning rate ({schedule} schedule)" if schedule != "none"
                  else "Learning rate (constant)")
    ax3.set_xlabel("epoch")
    ax3.set_ylabel("learning rate  (log scale)")
    ax3.set_yscale("log")
    ax3.grid(True, which="major", alpha=0.3)
    fig.suptitle("Two-layer MLP (64-64-10, ReLU) on scikit-learn digits, "
                 "trained with fusedopt optimizers")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    _shrink_png(path)
    return path


def _shrink_png(path: Path) -> None:
    """Palettise to 256 colours: a quarter of the size, same look for line plots."""
    try:
        from PIL import Image  # matplotlib depends on Pillow

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE,
                                               dither=Image.Dither.NONE)
        small.save(path, optimize=True)
    except (ImportError, AttributeError, OSError):  # old Pillow: keep the full PNG
        pass


# --------------------------------------------------------------------------- #
# command line
# --------------------------------------------------------------------------- #
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train a NumPy MLP on scikit-learn's digits with fusedopt optimizers.")
    p.add_argument("--epochs", type=int, default=30, help="epochs per optimizer (default 30)")
    p.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS,
                   help=f"comma-separated, from: {', '.join(OPTIMIZERS)} (default: all)")
    p.add_argument("--schedule", choices=SCHEDULES, default="cosine",
                   help="learning-rate schedule, stepped per epoch (default cosine)")
    p.add_argument("--lr", type=float, default=None,
                   help="override every optimizer's learning rate")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true", help="train in float64 (default float32)")
    p.add_argument("--out", default="mlp_digits_out", help="directory for mlp_digits.png")
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run: 3 epochs of adam and momentum, unless given")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--quiet", action="store_true", help="only print the summary")
    args = p.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        if "--epochs" not in given and not any(a.startswith("--epochs=") for a in given):
            args.epochs = 3
        if "--optimizers" not in given and not any(a.startswith("--optimizers=") for a in given):
            args.optimizers = "adam,momentum"
    if args.epochs < 1:
        p.error("--epochs must be at least 1")
    names = [s.strip().lower() for s in args.optimizers.split(",") if s.strip()]
    bad = [s for s in names if s not in OPTIMIZERS]
    if bad or not names:
        p.error(f"unknown optimizer(s) {', '.join(bad) or '(none)'}; "
                f"choose from {', '.join(OPTIMIZERS)}")
    args.names = names
    return args


def run(args: argparse.Namespace) -> list[History]:
    data = load_data(args.seed, np.float64 if args.float64 else np.float32)
    print(f"digits: {len(data.y_train)} training and {len(data.y_test)} test images, "
          f"{data.X_train.shape[1]} features, {data.X_train.dtype}; "
          f"MLP 64-{args.hidden}-10, batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.schedule} schedule", flush=True)
    histories = []
    for name in args.names:
        histories.append(train(
            name, data, epochs=args.epochs, batch_size=args.batch_size, hidden=args.hidden,
            schedule=args.schedule, seed=args.seed, lr=args.lr,
            progress=not args.no_progress, verbose=not args.quiet,
        ))
    return histories


def summary(histories: list[History]) -> str:
    lines = [f"{'optimizer':<10} {'settings':<46} {'test acc':>8} {'best':>7} "
             f"{'loss':>8} {'time':>7}"]
    for h in histories:
        lines.append(f"{h.name:<10} {h.settings:<46} {h.final_acc:>8.2%} "
                     f"{max(h.test_acc):>7.2%} {h.train_loss[-1]:>8.4f} {h.seconds:>6.2f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    histories = run(args)
    print("\n" + summary(histories))
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print('\nmatplotlib is not installed; no plot written '
                  '(pip install "fusedopt[plot]").')
        else:
            out = plot(histories, Path(args.out) / "mlp_digits.png", args.schedule)
            print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
