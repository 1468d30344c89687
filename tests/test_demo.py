"""fusedopt.demo: the test functions, the runs (numbers that must make sense) and the CLI."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from fusedopt.demo import cli
from fusedopt.demo import runs as R
from fusedopt.demo.functions import (
    BEALE,
    FUNCTIONS,
    QUADRATIC,
    QUADRATIC_HESSIAN,
    ROSENBROCK,
)


# --------------------------------------------------------------------------- #
# functions
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("fn", list(FUNCTIONS.values()), ids=list(FUNCTIONS))
def test_gradient_matches_finite_differences(fn):
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1.5, 1.5, size=(20, 2))
    h = 1e-6
    num = np.stack(
        [(fn.value(pts + h * e) - fn.value(pts - h * e)) / (2 * h) for e in np.eye(2)], axis=-1
    )
    np.testing.assert_allclose(fn.grad(pts), num, rtol=1e-6, atol=1e-5)
    # single point in, single gradient out
    assert fn.grad(pts[0]).shape == (2,)
    assert np.ndim(fn.value(pts[0])) == 0


@pytest.mark.parametrize("fn", list(FUNCTIONS.values()), ids=list(FUNCTIONS))
def test_minimum_is_zero_with_zero_gradient(fn):
    m = np.array(fn.minimum)
    assert fn.value(m) == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(fn.grad(m), 0.0, atol=1e-12)
    assert fn.value(fn.start) > 1.0
    xs, ys = fn.xlim, fn.ylim
    assert xs[0] < fn.start[0] < xs[1] and ys[0] < fn.start[1] < ys[1]
    assert xs[0] < m[0] < xs[1] and ys[0] < m[1] < ys[1]


def test_known_values():
    assert ROSENBROCK.value(np.array([0.0, 0.0])) == 1.0
    assert ROSENBROCK.value(np.array([-1.0, 1.0])) == 4.0
    assert BEALE.value(np.array([0.0, 0.0])) == pytest.approx(1.5**2 + 2.25**2 + 2.625**2)
    np.testing.assert_allclose(np.linalg.eigvalsh(QUADRATIC_HESSIAN), [1.0, 50.0])
    assert QUADRATIC.value(np.array([1.0, 0.0])) == pytest.approx(
        0.5 * QUADRATIC_HESSIAN[0, 0])


def test_points_must_be_pairs():
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        ROSENBROCK.value(np.zeros(3))


# --------------------------------------------------------------------------- #
# runs: the optimizers behave as the textbooks say
# --------------------------------------------------------------------------- #
def test_run_path_records_every_step_in_place():
    spec = R.OptimizerSpec("Momentum", "SGD", dict(lr=1e-3, momentum=0.9))
    run = R.run_path(ROSENBROCK, spec, 50)
    assert run.path.shape == (51, 2) and run.losses.shape == (51,)
    np.testing.assert_array_equal(run.path[0], ROSENBROCK.start)
    np.testing.assert_allclose(run.losses, ROSENBROCK.value(run.path))
    assert not run.diverged and run.losses[-1] < run.losses[0]
    assert np.all(np.diff(run.path, axis=0) != 0)  # it actually moved every step


def test_momentum_beats_plain_sgd_on_rosenbrock():
    runs = {r.spec.name: r for r in R.compare_on_function("rosenbrock", steps=200)}
    sgd, mom, nag = runs["SGD"], runs["Momentum"], runs["Nesterov"]
    assert sgd.spec.kwargs["lr"] == mom.spec.kwargs["lr"]  # same step size: only momentum differs
    assert mom.final_loss < 0.1 * sgd.final_loss
    assert nag.final_loss < 0.1 * sgd.final_loss
    assert mom.distance_to_minimum < sgd.distance_to_minimum


def test_nesterov_no_worse_than_momentum_on_the_quadratic():
    mom, nag = R.momentum_vs_nesterov(steps=100)
    assert mom.spec.kwargs == {k: v for k, v in nag.spec.kwargs.items() if k != "nesterov"}
    assert nag.final_loss <= mom.final_loss
    # and it really converges: 100 steps from f=17 to well below 1e-3
    assert nag.final_loss < 1e-4
    # momentum zig-zags across the valley: its loss goes up far more often
    ups = lambda r: int(np.sum(np.diff(r.losses) > 0))  # noqa: E731
    assert ups(nag) < ups(mom)


@pytest.mark.parametrize("name", ["rosenbrock", "quadratic", "beale"])
def test_every_optimizer_makes_progress(name):
    for run in R.compare_on_function(name, steps=R.DEFAULT_STEPS[name] // 2):
        assert not run.diverged, run.spec.label
        assert run.final_loss < 0.5 * run.losses[0], run.spec.label


def test_compare_all_defaults_reach_the_minimum():
    results = R.compare_all()
    assert list(results) == ["rosenbrock", "quadratic", "beale"]
    for runs in results.values():
        assert [r.spec.name for r in runs] == ["SGD", "Momentum", "Nesterov", "Adam", "RMSprop", "Rprop", "L-BFGS"]
        best = min(runs, key=lambda r: r.final_loss)
        assert best.final_loss < 1e-3
        assert best.distance_to_minimum < 0.1


def test_lbfgs_reaches_each_minimum():
    """One iteration per step, its line search calling the closure: measured 3e-10 (Rosenbrock),
    4e-13 (quadratic), 1e-17 (Beale) by the default step counts."""
    for name, runs in R.compare_all().items():
        (lbfgs,) = [r for r in runs if r.spec.kind == "LBFGS"]
        assert lbfgs.final_loss < 1e-8, name
        assert lbfgs.distance_to_minimum < 1e-3, name


def test_divergence_is_detected():
    spec = R.OptimizerSpec("SGD", "SGD", dict(lr=0.1))
    run = R.run_path(ROSENBROCK, spec, 100)
    assert run.diverged and run.final_loss == math.inf
    assert len(run.path) < 101 and np.all(np.isfinite(run.path))
    assert np.isnan(run.losses[-1])


def test_lr_momentum_grid():
    g = R.lr_momentum_grid(lrs=(1e-4, 1e-3, 1e-2), momenta=(0.0, 0.9), steps=100)
    assert g.final_loss.shape == (2, 3)
    assert np.all(np.isinf(g.final_loss[:, 2]))  # lr=1e-2 diverges on Rosenbrock
    assert np.all(np.isfinite(g.final_loss[:, :2]))
    assert g.final_loss[1, 1] < g.final_loss[0, 1]  # momentum helps at lr=1e-3
    lr, mu, best = g.best()
    assert (lr, mu) == (1e-3, 0.9) and best == g.final_loss[1, 1]


def test_regression_optimizers_fit_and_dict_params():
    data, runs = R.regression_runs(epochs=8)
    assert data.min_loss > 0
    assert [r.label.split()[0] for r in runs] == ["Momentum", "Adam", "RMSprop", "Adam+EMA", "Schedule-Free", "Lookahead"]
    for r in runs:
        assert r.losses.shape == (9,)
        assert not r.diverged
        assert r.excess[-1] < 1e-2 * r.excess[0], r.label
        assert np.all(r.excess > -1e-9)  # nobody beats least squares


def test_averaging_lowers_adams_noise_floor():
    """At Adam's constant lr, evaluated on their averages, Adam+EMA, Schedule-Free AdamW and
    Lookahead(Adam) end closer to least squares than Adam (measured: 10x, 26x, 6x closer over
    40 epochs); Schedule-Free leaves its parameters at y (train mode) between evaluations."""
    _, runs = R.regression_runs(epochs=40)
    excess = {r.label.split()[0]: r.excess[-1] for r in runs}
    for name in ("Adam+EMA", "Schedule-Free", "Lookahead"):
        assert excess[name] < 0.3 * excess["Adam"], name
    params = {"w": np.zeros(3), "b": np.zeros(1)}
    opt = R.REGRESSION_SPECS[4].make(params)
    opt.step({"w": np.ones(3), "b": np.ones(1)})
    with R.evaluated(opt, params):
        assert opt.param_groups[0]["train_mode"] is False
    assert opt.param_groups[0]["train_mode"] is True


def test_lr_decay_beats_constant_rate_on_noisy_regression():
    _, runs = R.schedule_runs(epochs=40)
    by = {r.label.split("(")[0].split()[0]: r for r in runs}
    const = by["constant"]
    assert np.all(const.lrs == const.lrs[0])
    for name in ("StepLR", "ExponentialLR", "CosineAnnealingLR"):
        r = by[name]
        assert r.lrs[0] == pytest.approx(const.lrs[0])
        assert r.lrs[-1] < 0.1 * r.lrs[0], name
        assert np.all(np.diff(r.lrs) <= 1e-15), name  # never increases
        # average over the last 5 epochs: mini-batch noise makes single epochs jumpy
        assert r.excess[-5:].mean() < 0.5 * const.excess[-5:].mean(), name


def test_init_activation_stats():
    stats = R.init_activation_stats(depth=8, width=128, batch=128)
    by = {s.label.split(",")[1].strip().split()[0]: s for s in stats if "N(0" not in s.label}
    tiny = next(s for s in stats if "N(0" in s.label)
    assert tiny.stds[-1] < 1e-6  # small weights: the signal vanishes
    assert 0.3 < by["Kaiming"].stds[-1] < 3.0  # He keeps ReLU activations' scale
    # Xavier's gain 1 on ReLU halves the signal's power at every layer
    assert by["Xavier"].stds[-1] < 0.2 * by["Kaiming"].stds[-1]


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def test_cli_prints_the_numbers_without_plots(capsys, tmp_path):
    assert cli.main(["--quick", "--no-plot", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rosenbrock (N=150)" in out and "beale" in out and "quadratic" in out
    for name in ("SGD", "Momentum", "Nesterov", "Adam", "RMSprop", "CosineAnnealingLR",
                 "Kaiming"):
        assert name in out
    assert not list(tmp_path.iterdir())


def test_cli_accepts_the_subcommand_name(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--help"])
    assert e.value.code == 0
    assert "usage: python -m fusedopt demo" in capsys.readouterr().out


def test_cli_without_matplotlib_says_how_to_install(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert cli.main(["--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Final loss" in out  # the numbers are still there
    assert 'pip install "fusedopt[plot]"' in out
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    assert "--out DIR" in capsys.readouterr().out


def test_cli_writes_the_pngs(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "plots"
    assert cli.main(["--quick", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted(cli.PLOT_FILES.values())
    for name in written:
        path = out_dir / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 5_000 < path.stat().st_size < 200_000
        assert str(path) in out  # tells the user where each plot went


def test_cli_refuses_an_out_that_is_a_file_before_running(capsys, tmp_path):
    taken = tmp_path / "plots"
    taken.write_text("")
    assert cli.main(["--quick", "--out", str(taken)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --out: {taken} exists and is not a directory\n"
    assert captured.out == ""  # (nothing was run)
