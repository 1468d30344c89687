"""PNG plots of the demo runs (needs matplotlib: ``pip install "fusedopt[plot]"``).

matplotlib is imported lazily, inside each function, and only through its
object-oriented API (``matplotlib.figure.Figure``), so importing this module
is free, nothing touches pyplot's global state or the user's backend, and no
window ever opens. Every function writes one PNG and returns its path.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .functions import TestFunction
from .runs import CurveRun, GridResult, InitStats, Run

__all__ = [
    "matplotlib_available",
    "plot_paths",
    "plot_momentum_vs_nesterov",
    "plot_loss_curves",
    "plot_lr_momentum_grid",
    "plot_curves",
    "plot_schedules",
    "plot_init_stats",
]

DPI = 100


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` as a PNG, palettised to 256 colours (a third of the size,
    no visible difference for line plots and filled contours)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    try:
        from PIL import Image  # matplotlib depends on Pillow

        buf.seek(0)
        with Image.open(buf) as im:
            octree: Any = getattr(getattr(Image, "Quantize", Image), "FASTOCTREE", 2)
            none: Any = getattr(getattr(Image, "Dither", Image), "NONE", 0)
            im.convert("RGB").quantize(256, method=octree, dither=none).save(
                p, format="PNG", optimize=True)
    except Exception:  # pragma: no cover - any Pillow trouble: keep the plain PNG
        p.write_bytes(buf.getvalue())
    return p


def _grid(function: TestFunction, n: int = 300) -> tuple[np.ndarray, ...]:
    xs = np.linspace(*function.xlim, n)
    ys = np.linspace(*function.ylim, n)
    X, Y = np.meshgrid(xs, ys)
    Z = function.value(np.stack([X, Y], axis=-1))
    return X, Y, Z


def _contour(ax: Any, fig: Any, function: TestFunction) -> None:
    """Filled contours on log-spaced levels (these functions span 6+ decades)."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import LogFormatterSciNotation, NullLocator

    X, Y, Z = _grid(function)
    lo = max(math.floor(math.log10(max(float(Z.min()), 1e-300))), -3)
    hi = math.ceil(math.log10(float(Z.max())))
    levels = np.logspace(lo, hi, 3 * (hi - lo) + 1)  # 3 levels per decade
    Zc = np.clip(Z, levels[0], levels[-1])
    norm = LogNorm(vmin=levels[0], vmax=levels[-1])
    cs = ax.contourf(X, Y, Zc, levels=levels, norm=norm, cmap="Blues_r", alpha=0.6)
    ax.contour(X, Y, Zc, levels=levels, norm=norm, colors="k", linewidths=0.35,
               alpha=0.3)
    cb = fig.colorbar(cs, ax=ax, shrink=0.9, pad=0.01)
    cb.set_ticks(np.logspace(lo, hi, hi - lo + 1))
    cb.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
    cb.ax.yaxis.set_minor_locator(NullLocator())
    cb.set_label("f(x, y)  (log scale)")
    ax.plot(*function.minimum, marker="*", color="gold", markersize=16,
            markeredgecolor="k", linestyle="none", label="minimum", zorder=5)
    ax.set_xlim(function.xlim)
    ax.set_ylim(function.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _draw_paths(ax: Any, runs: Sequence[Run]) -> None:
    start = runs[0].path[0]
    ax.plot(*start, marker="o", color="k", markersize=7, linestyle="none",
            label="start", zorder=5)
    for r in runs:
        p = r.path
        label = f"{r.spec.label}: f={_loss_str(r)}"
        ax.plot(p[:, 0], p[:, 1], _style(r.spec.name), color=r.spec.color,
                linewidth=1.6, alpha=0.9, label=label, zorder=3)
        if not r.diverged:
            ax.plot(*p[-1], marker="X", color=r.spec.color, markersize=9,
                    markeredgecolor="k", markeredgewidth=0.6, linestyle="none",
                    zorder=4)


def _style(name: str) -> str:
    return "--" if name == "Nesterov" else "-"


def _loss_str(r: Run) -> str:
    return "diverged" if r.diverged else f"{r.final_loss:.1e}"


def plot_paths(runs: Sequence[Run], path: str | os.PathLike[str]) -> Path:
    """Contour plot of one function with every optimizer's path (X = end)."""
    fn = runs[0].function
    steps = len(runs[0].losses) - 1
    fig = _figure(8.0, 6.2)
    ax = fig.add_subplot()
    _contour(ax, fig, fn)
    _draw_paths(ax, runs)
    ax.set_title(f"{fn.title}: {steps} steps from {tuple(fn.start.tolist())}")
    ax.legend(loc="lower right" if fn.name != "beale" else "upper right",
              fontsize=8, framealpha=0.9)
    return _save(fig, path)


def plot_momentum_vs_nesterov(runs: Sequence[Run], path: str | os.PathLike[str]) -> Path:
    """Momentum vs Nesterov on the quadratic: paths (left), loss (right)."""
    fn = runs[0].function
    fig = _figure(13.0, 5.2)
    fig.get_layout_engine().set(wspace=0.06)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.3, 1])
    _contour(ax, fig, fn)
    ax.set_aspect("equal")
    _draw_paths(ax, runs)
    kw = runs[0].spec.kwargs
    ax.set_title(f"{fn.title}\nlr={kw['lr']:g}, momentum={kw['momentum']:g}")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    for r in runs:
        ax2.semilogy(r.losses, _style(r.spec.name), color=r.spec.color,
                     label=r.spec.name, linewidth=1.6)
    ax2.set_xlabel("step")
    ax2.set_ylabel("f  (log scale)")
    ax2.set_title("Loss: Nesterov's look-ahead damps the zig-zag")
    ax2.grid(True, which="major", alpha=0.3)
    ax2.legend()
    return _save(fig, path)


def plot_loss_curves(results: dict[str, list[Run]], path: str | os.PathLike[str]) -> Path:
    """Loss vs step (log y) for every optimizer, one panel per function."""
    fig = _figure(15.0, 4.8)
    axes = fig.subplots(1, len(results))
    for ax, runs in zip(np.atleast_1d(axes), results.values()):
        for r in runs:
            y = np.maximum(r.losses, 1e-300)
            ax.semilogy(y, _style(r.spec.name), color=r.spec.color, linewidth=1.5,
                        label=f"{r.spec.label}" + (" (diverged)" if r.diverged else ""))
        ax.set_title(runs[0].function.title, fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("f  (log scale)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower left")
        lo = np.nanmin([np.nanmin(r.losses) for r in runs])
        ax.set_ylim(bottom=max(lo / 3, 1e-16))
    fig.suptitle("Loss vs step (fusedopt optimizers, full-batch gradients)")
    return _save(fig, path)


def plot_lr_momentum_grid(grid: GridResult, path: str | os.PathLike[str]) -> Path:
    """Heatmap of SGD's final loss over learning rate x momentum (log colours)."""
    from matplotlib.colors import LogNorm

    vals = grid.final_loss
    finite = vals[np.isfinite(vals)]
    fig = _figure(8.0, 5.6)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(np.where(np.isfinite(vals), np.maximum(vals, 1e-12), np.nan))
    vmin = max(float(finite.min()) if finite.size else 1e-12, 1e-12)
    vmax = float(finite.max()) if finite.size else 1.0
    im = ax.imshow(masked, origin="lower", aspect="auto", cmap="viridis_r",
                   norm=LogNorm(vmin=vmin, vmax=max(vmax, vmin * 10)))
    ax.set_facecolor("#d9d9d9")
    for i in range(vals.shape[0]):
        for j in range(vals.shape[1]):
            v = vals[i, j]
            if np.isfinite(v):
                rel = (math.log10(max(v, vmin)) - math.log10(vmin)) / max(
                    math.log10(vmax) - math.log10(vmin), 1e-12)
                ax.text(j, i, f"{v:.0e}", ha="center", va="center", fontsize=8,
                        color="white" if rel > 0.55 else "black")
            else:
                ax.text(j, i, "diverged", ha="center", va="center", fontsize=7.5,
                        color="#b00000")
    ax.set_xticks(range(len(grid.lrs)), [f"{lr:g}" for lr in grid.lrs])
    ax.set_yticks(range(len(grid.momenta)), [f"{m:g}" for m in grid.momenta])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("momentum")
    lr, mu, best = grid.best()
    ax.set_title(f"SGD on {grid.function.name.capitalize()}: final loss after "
                 f"{grid.steps} steps\n(best: lr={lr:g}, momentum={mu:g} -> {best:.1e}; "
                 "grey = diverged)")
    cb = fig.colorbar(im, ax=ax)
    cb.set_label("final f  (log scale, lower is better)")
    return _save(fig, path)


def plot_curves(
    runs: Sequence[CurveRun], path: str | os.PathLike[str], title: str,
    ylabel: str = "training MSE - least-squares MSE  (log scale)",
) -> Path:
    """Excess loss per epoch of several mini-batch runs (log y)."""
    fig = _figure(8.0, 5.0)
    ax = fig.add_subplot()
    for r in runs:
        ax.semilogy(np.maximum(r.excess, 1e-12), color=r.color, linewidth=1.8,
                    label=r.label + (" (diverged)" if r.diverged else ""))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_schedules(runs: Sequence[CurveRun], path: str | os.PathLike[str]) -> Path:
    """Learning rate per epoch (left) and excess loss (right) for each schedule."""
    fig = _figure(13.0, 4.8)
    ax1, ax2 = fig.subplots(1, 2)
    for r in runs:
        epochs = np.arange(len(r.lrs))
        ax1.step(epochs, r.lrs, where="post", color=r.color, linewidth=1.8, label=r.label)
        ax2.semilogy(np.maximum(r.excess, 1e-12), color=r.color, linewidth=1.8,
                     label=r.label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("learning rate")
    ax1.set_title("Learning-rate schedules (fusedopt.schedules)")
    ax1.grid(True, alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training MSE - least-squares MSE  (log scale)")
    ax2.set_title("SGD-momentum on noisy mini-batch regression:\n"
                  "decaying the rate gets below the constant rate's noise floor")
    ax2.grid(True, which="major", alpha=0.3)
    ax2.legend(fontsize=8)
    return _save(fig, path)


def plot_init_stats(stats: Sequence[InitStats], path: str | os.PathLike[str]) -> Path:
    """Std of the activations per layer for each initialisation (log y)."""
    fig = _figure(8.0, 5.0)
    ax = fig.add_subplot()
    for s in stats:
        ax.semilogy(np.arange(len(s.stds)), s.stds, marker="o", markersize=4,
                    color=s.color, linewidth=1.8, label=s.label)
    ax.set_xlabel("layer (0 = input)")
    ax.set_ylabel("std of activations  (log scale)")
    ax.set_title("Why initialisation matters: activation scale through a deep "
                 f"network\n(fusedopt.init, {stats[0].width} units per layer)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=9)
    return _save(fig, path)
