"""``python -m fusedopt demo [--out DIR]``: run the optimizers, print, plot."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from . import runs as R

INSTALL_HINT = (
    "matplotlib is not installed, so no plots were written (the numbers above "
    'are complete).\nInstall the plotting extra with:  pip install "fusedopt[plot]"'
    "   (or: pip install matplotlib)"
)

PLOT_FILES = {
    "rosenbrock": "rosenbrock_paths.png",
    "beale": "beale_paths.png",
    "quadratic": "quadratic_momentum_vs_nesterov.png",
    "loss": "loss_curves.png",
    "grid": "lr_momentum_grid.png",
    "regression": "regression_optimizers.png",
    "schedules": "lr_schedules.png",
    "init": "init_activations.png",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fusedopt demo",
        description=(
            "Run fusedopt's optimizers on classic test functions (Rosenbrock, an "
            "ill-conditioned quadratic, Beale), a mini-batch regression with "
            "learning-rate schedules, and a deep network's initialisation; print "
            "the results and write PNG plots."
        ),
    )
    p.add_argument("--out", metavar="DIR", default="fusedopt-demo",
                   help="directory for the PNG files (default: ./fusedopt-demo)")
    p.add_argument("--no-plot", action="store_true",
                   help="only print the numbers, write no plots")
    p.add_argument("--quick", action="store_true",
                   help="fewer steps (a smoke test; the plots are less telling)")
    return p


def _e(v: float) -> str:
    if math.isinf(v):
        return "diverged"
    if math.isnan(v):
        return "nan"
    return f"{v:.2e}"


def _print_table(results: dict[str, list[R.Run]]) -> None:
    names = list(results)
    steps = {n: len(results[n][0].losses) - 1 for n in names}
    print("Final loss f after N steps (minimum is 0; settings in the plot legends):")
    header = f"  {'optimizer':<10}" + "".join(
        f"{f'{n} (N={steps[n]})':>22}" for n in names
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for i, spec in enumerate(results[names[0]]):
        row = f"  {spec.spec.name:<10}"
        for n in names:
            row += f"{_e(results[n][i].final_loss):>22}"
        print(row)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    argv = list(argv)
    if argv[:1] == ["demo"]:  # tolerate being handed the sub-command name too
        argv = argv[1:]
    args = _parser().parse_args(argv)
    out = Path(args.out)
    if not args.no_plot and out.exists() and not out.is_dir():  # (before the runs, not after)
        print(f"error: --out: {out} exists and is not a directory", file=sys.stderr)
        return 2
    scale = 0.25 if args.quick else 1.0
    t0 = time.perf_counter()

    print("fusedopt demo: optimizers on classic test functions\n")
    results = R.compare_all(steps_scale=scale)
    _print_table(results)

    mvn = R.momentum_vs_nesterov(steps=max(1, int(100 * scale)))
    print("\nMomentum vs Nesterov on the ill-conditioned quadratic "
          f"(lr={mvn[0].spec.kwargs['lr']:g}, momentum={mvn[0].spec.kwargs['momentum']:g}):")
    for r in mvn:
        print(f"  {r.spec.name:<10} f = {_e(r.final_loss)}")

    grid = R.lr_momentum_grid(steps=max(1, int(500 * scale)))
    lr, mu, best = grid.best()
    n_div = int((~(grid.final_loss < math.inf)).sum())
    print(f"\nSGD on Rosenbrock, learning rate x momentum grid ({grid.steps} steps): "
          f"best lr={lr:g}, momentum={mu:g} -> f = {best:.2e}; "
          f"{n_div} of {grid.final_loss.size} settings diverged")

    epochs = max(2, int(40 * scale))
    data, reg = R.regression_runs(epochs=epochs)
    print(f"\nMini-batch linear regression ({epochs} epochs, batch 32), "
          "final training MSE above the least-squares optimum "
          f"({data.min_loss:.3f}):")
    for c in reg:
        print(f"  {c.label:<42} {_e(float(c.excess[-1]))}")

    _, sch = R.schedule_runs(epochs=epochs)
    print("\nLearning-rate decay, SGD-momentum on the same regression "
          "(excess MSE, last epoch):")
    for c in sch:
        print(f"  {c.label:<34} {_e(float(c.excess[-1]))}")

    width = 64 if args.quick else 256
    stats = R.init_activation_stats(width=width, batch=128 if args.quick else 512)
    print(f"\nActivation std after 12 layers of {width} units (input std 1.0):")
    for s in stats:
        print(f"  {s.label:<34} {s.stds[-1]:.3g}")

    print(f"\n(computed in {time.perf_counter() - t0:.1f} s)")

    if args.no_plot:
        return 0
    from . import plots as P

    if not P.matplotlib_available():
        print("\n" + INSTALL_HINT)
        return 0

    written = [
        P.plot_paths(results["rosenbrock"], out / PLOT_FILES["rosenbrock"]),
        P.plot_paths(results["beale"], out / PLOT_FILES["beale"]),
        P.plot_momentum_vs_nesterov(mvn, out / PLOT_FILES["quadratic"]),
        P.plot_loss_curves(results, out / PLOT_FILES["loss"]),
        P.plot_lr_momentum_grid(grid, out / PLOT_FILES["grid"]),
        P.plot_curves(
            reg, out / PLOT_FILES["regression"],
            title="Mini-batch linear regression: optimizers, and Adam averaged\n"
                  f"({len(data.y)} noisy samples, {data.X.shape[1]} features, batch 32; EMA, Schedule-Free, Lookahead)"),
        P.plot_schedules(sch, out / PLOT_FILES["schedules"]),
        P.plot_init_stats(stats, out / PLOT_FILES["init"]),
    ]
    print(f"\nWrote {len(written)} plots:")
    for p in written:
        print(f"  {p}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
