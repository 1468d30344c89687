"""Run fusedopt optimizers on the demo problems and collect what the plots need.

Everything here is plain NumPy + fusedopt (no matplotlib), so the numbers can
be computed, printed and tested without the ``plot`` extra.

* :func:`run_path` — one optimizer on a 2-D :class:`~.functions.TestFunction`,
  returning the path and the loss at every step.
* :func:`compare_on_function` — the standard line-up (SGD, momentum, Nesterov,
  Adam, RMSprop, Rprop, L-BFGS) with settings tuned per function (:data:`DEFAULT_SETTINGS`).
* :func:`lr_momentum_grid` — final loss of SGD for a grid of learning rates
  and momenta.
* :func:`regression_runs` / :func:`schedule_runs` — mini-batch linear
  regression with SGD-momentum, Adam, RMSprop, and Adam's noise floor lowered
  without a schedule (Adam evaluated on an EMA of its weights, Schedule-Free
  AdamW at its average, Lookahead around Adam); and SGD-momentum with
  constant / step / exponential / cosine learning-rate decay.
* :func:`init_activation_stats` — how the activations' scale evolves through a
  deep network for Xavier vs Kaiming initialisation.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .functions import BEALE, FUNCTIONS, QUADRATIC, ROSENBROCK, TestFunction

__all__ = [
    "OptimizerSpec",
    "Run",
    "DEFAULT_SETTINGS",
    "DEFAULT_STEPS",
    "standard_specs",
    "run_path",
    "compare_on_function",
    "compare_all",
    "momentum_vs_nesterov",
    "lr_momentum_grid",
    "GridResult",
    "make_regression",
    "regression_runs",
    "schedule_runs",
    "CurveRun",
    "InitStats",
    "init_activation_stats",
]

#: a point farther than this from the origin counts as diverged
DIVERGENCE_RADIUS = 1e6

# One colour per optimizer, shared by every plot.
COLORS = {
    "SGD": "#7f7f7f",
    "Momentum": "#1f77b4",
    "Nesterov": "#ff7f0e",
    "Adam": "#d62728",
    "RMSprop": "#2ca02c",
    "Rprop": "#8c564b",
    "Adagrad": "#9467bd",
    "L-BFGS": "#17becf",
    "Adam+EMA": "#e377c2",
    "Schedule-Free": "#bcbd22",
    "Lookahead": "#9467bd",
}


def _fusedopt() -> Any:
    import fusedopt

    return fusedopt


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer: ``make(params) -> optimizer``."""

    name: str  # "SGD", "Momentum", ... (also the colour key)
    kind: str  # fusedopt class name: "SGD", "Adam", ...
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        shown = []
        for k, v in self.kwargs.items():
            if k in ("nesterov", "max_iter", "max_eval", "history_size", "line_search_fn"):  # L-BFGS's: the name says it
                continue
            shown.append(f"{k}={_fmt(v)}")
        return f"{self.name} ({', '.join(shown)})" if shown else self.name

    @property
    def color(self) -> str:
        return COLORS.get(self.name, "#17becf")

    def make(self, params: list[np.ndarray] | dict[str, np.ndarray]) -> Any:
        fo = _fusedopt()
        if self.kind == "Adam+EMA":
            kw = dict(self.kwargs)
            decay = kw.pop("decay")
            return AdamWithEMA(params, decay, **kw)
        if self.kind == "Lookahead(Adam)":
            kw = dict(self.kwargs)
            k, alpha = kw.pop("k"), kw.pop("alpha")
            return fo.Lookahead(fo.Adam(params, **kw), k=k, alpha=alpha)
        return getattr(fo, self.kind)(params, **self.kwargs)


class AdamWithEMA:
    """Adam, and an exponential moving average of its weights (``fusedopt.AveragedModel``,
    one native pass per update): the average is what gets evaluated (:func:`evaluated`)."""

    def __init__(self, params: list[np.ndarray] | dict[str, np.ndarray], decay: float, **adam_kwargs: Any) -> None:
        fo = _fusedopt()
        self.params = params
        self.adam = fo.Adam(params, **adam_kwargs)
        self.ema = fo.AveragedModel(params, multi_avg_fn=fo.get_ema_multi_avg_fn(decay))
        self.param_groups = self.adam.param_groups

    def step(self, grads: Any) -> None:
        self.adam.step(grads)
        self.ema.update_parameters(self.params)


@contextlib.contextmanager
def evaluated(opt: Any, params: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """The weights to evaluate: the EMA's, Schedule-Free's average x (``eval()``, then
    ``train()`` again), or the parameters."""
    fo = _fusedopt()
    if isinstance(opt, AdamWithEMA):
        yield opt.ema.params
    elif isinstance(opt, (fo.SGDScheduleFree, fo.AdamWScheduleFree)):
        opt.eval()
        try:
            yield params
        finally:
            opt.train()
    else:
        yield params


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e4):
            m, e = f"{v:.0e}".split("e")
            return f"{m}e{int(e)}"
        return f"{v:g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


@dataclass
class Run:
    """Result of one optimizer on one 2-D function."""

    spec: OptimizerSpec
    function: TestFunction
    path: np.ndarray  # (steps_done + 1, 2): start point first
    losses: np.ndarray  # (steps + 1,): nan after divergence
    diverged: bool

    @property
    def final_loss(self) -> float:
        return math.inf if self.diverged else float(self.losses[-1])

    @property
    def final_point(self) -> np.ndarray:
        out: np.ndarray = self.path[-1]
        return out

    @property
    def distance_to_minimum(self) -> float:
        if self.diverged:
            return math.inf
        return float(np.hypot(*(self.path[-1] - np.asarray(self.function.minimum))))


def run_path(
    function: TestFunction,
    spec: OptimizerSpec,
    steps: int,
    start: Sequence[float] | None = None,
) -> Run:
    """Step ``spec``'s optimizer ``steps`` times on ``function`` from ``start``.

    The parameter is one float64 array of shape (2,), updated in place by the
    fusedopt optimizer; its position is copied into the path after each step.
    A run that leaves a radius of 1e6 or goes non-finite stops and is marked
    ``diverged`` (its remaining losses are nan).
    """
    xy = np.array(function.start if start is None else start, dtype=np.float64)
    opt = spec.make([xy])
    path = np.empty((steps + 1, 2))
    losses = np.full(steps + 1, np.nan)
    path[0] = xy
    losses[0] = function.value(xy)
    diverged = False
    done = 0
    def closure() -> tuple[float, list[np.ndarray]]:  # L-BFGS evaluates where its line search goes
        return float(function.value(xy)), [function.grad(xy)]

    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported, not warned
        for i in range(1, steps + 1):
            if spec.kind == "LBFGS":
                opt.step(closure)
            else:
                opt.step([function.grad(xy)])
            if not np.all(np.isfinite(xy)) or np.hypot(*xy) > DIVERGENCE_RADIUS:
                diverged = True
                break
            path[i] = xy
            losses[i] = function.value(xy)
            done = i
    return Run(spec, function, path[: done + 1].copy(), losses, diverged)


# --------------------------------------------------------------------------- #
# The standard line-up, tuned per function.
# --------------------------------------------------------------------------- #
#: Learning rates per function: ``sgd`` is shared by SGD, Momentum and Nesterov
#: (so the plots show what momentum adds at the same step size), ``mu`` is the
#: momentum; ``adam`` and ``rms`` are Adam's and RMSprop's learning rates, ``rprop``
#: Rprop's initial step size (these are full-batch gradients, what Rprop is for).
#: L-BFGS takes one iteration per step (``max_iter=1``, so its path has a point per
#: iteration), with the strong-Wolfe line search choosing the step length.
DEFAULT_SETTINGS: dict[str, dict[str, float]] = {
    "rosenbrock": dict(sgd=1e-3, mom=1e-3, mu=0.9, adam=0.05, rms=0.01, rprop=0.01),
    "quadratic": dict(sgd=0.01, mom=0.01, mu=0.9, adam=0.2, rms=0.1, rprop=0.01),
    "beale": dict(sgd=2e-3, mom=2e-3, mu=0.9, adam=0.05, rms=0.01, rprop=0.01),
}
DEFAULT_STEPS = {"rosenbrock": 600, "quadratic": 100, "beale": 500}


def standard_specs(function_name: str) -> list[OptimizerSpec]:
    """SGD, Momentum, Nesterov, Adam, RMSprop, Rprop and L-BFGS with the tuned settings."""
    s = DEFAULT_SETTINGS[function_name]
    return [
        OptimizerSpec("SGD", "SGD", dict(lr=s["sgd"])),
        OptimizerSpec("Momentum", "SGD", dict(lr=s["mom"], momentum=s["mu"])),
        OptimizerSpec(
            "Nesterov", "SGD", dict(lr=s["mom"], momentum=s["mu"], nesterov=True)
        ),
        OptimizerSpec("Adam", "Adam", dict(lr=s["adam"])),
        OptimizerSpec("RMSprop", "RMSprop", dict(lr=s["rms"])),
        OptimizerSpec("Rprop", "Rprop", dict(lr=s["rprop"])),
        # max_eval: torch's default (max_iter * 5 // 4 = 1) would let no step move
        OptimizerSpec("L-BFGS", "LBFGS", dict(max_iter=1, max_eval=25, history_size=10, line_search_fn="strong_wolfe")),
    ]


def compare_on_function(
    function: TestFunction | str, steps: int | None = None
) -> list[Run]:
    """Run the standard line-up on one function."""
    fn = FUNCTIONS[function] if isinstance(function, str) else function
    n = DEFAULT_STEPS[fn.name] if steps is None else steps
    return [run_path(fn, spec, n) for spec in standard_specs(fn.name)]


def compare_all(steps_scale: float = 1.0) -> dict[str, list[Run]]:
    """:func:`compare_on_function` on Rosenbrock, the quadratic and Beale."""
    out = {}
    for fn in (ROSENBROCK, QUADRATIC, BEALE):
        out[fn.name] = compare_on_function(
            fn, max(1, int(round(DEFAULT_STEPS[fn.name] * steps_scale)))
        )
    return out


def momentum_vs_nesterov(
    steps: int = 100, lr: float | None = None, momentum: float | None = None
) -> list[Run]:
    """Heavy-ball momentum vs Nesterov on the ill-conditioned quadratic.

    Same learning rate and momentum for both, so the only difference is where
    the gradient is effectively taken (Nesterov's look-ahead).
    """
    s = DEFAULT_SETTINGS["quadratic"]
    lr = s["mom"] if lr is None else lr
    mu = s["mu"] if momentum is None else momentum
    specs = [
        OptimizerSpec("Momentum", "SGD", dict(lr=lr, momentum=mu)),
        OptimizerSpec("Nesterov", "SGD", dict(lr=lr, momentum=mu, nesterov=True)),
    ]
    return [run_path(QUADRATIC, spec, steps) for spec in specs]


# --------------------------------------------------------------------------- #
# learning rate x momentum grid
# --------------------------------------------------------------------------- #
@dataclass
class GridResult:
    function: TestFunction
    lrs: np.ndarray
    momenta: np.ndarray
    steps: int
    final_loss: np.ndarray  # (len(momenta), len(lrs)); inf where diverged

    def best(self) -> tuple[float, float, float]:
        """(lr, momentum, final loss) of the best cell."""
        i, j = np.unravel_index(np.argmin(self.final_loss), self.final_loss.shape)
        return float(self.lrs[j]), float(self.momenta[i]), float(self.final_loss[i, j])


DEFAULT_GRID_LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
DEFAULT_GRID_MOMENTA = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)


def lr_momentum_grid(
    function: TestFunction | str = ROSENBROCK,
    lrs: Sequence[float] = DEFAULT_GRID_LRS,
    momenta: Sequence[float] = DEFAULT_GRID_MOMENTA,
    steps: int = 500,
) -> GridResult:
    """Final loss of ``fusedopt.SGD(lr, momentum)`` after ``steps`` steps."""
    fn = FUNCTIONS[function] if isinstance(function, str) else function
    lrs_a = np.asarray(lrs, dtype=np.float64)
    mus_a = np.asarray(momenta, dtype=np.float64)
    final = np.empty((len(mus_a), len(lrs_a)))
    for i, mu in enumerate(mus_a):
        for j, lr in enumerate(lrs_a):
            spec = OptimizerSpec("SGD", "SGD", dict(lr=float(lr), momentum=float(mu)))
            final[i, j] = run_path(fn, spec, steps).final_loss
    return GridResult(fn, lrs_a, mus_a, steps, final)


# --------------------------------------------------------------------------- #
# mini-batch linear regression: optimizer comparison and learning-rate decay
# --------------------------------------------------------------------------- #
@dataclass
class Regression:
    X: np.ndarray
    y: np.ndarray
    w_star: np.ndarray  # least-squares solution (with bias last)
    min_loss: float  # training MSE at w_star

    def loss(self, w: np.ndarray, b: np.ndarray) -> float:
        r = self.X @ w + b[0] - self.y
        return float(np.mean(r * r))


def make_regression(
    n: int = 512, d: int = 8, noise: float = 0.5, seed: int = 0
) -> Regression:
    """y = X w_true + 1 + noise, with feature scales from 0.3 to 3 (so the
    problem is moderately ill-conditioned, as real features are)."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(0.3, 3.0, d)
    X = rng.normal(size=(n, d)) * scales
    w_true = rng.normal(size=d)
    y = X @ w_true + 1.0 + noise * rng.normal(size=n)
    A = np.hstack([X, np.ones((n, 1))])
    w_star, *_ = np.linalg.lstsq(A, y, rcond=None)
    r = A @ w_star - y
    return Regression(X, y, w_star, float(np.mean(r * r)))


@dataclass
class CurveRun:
    """Loss per epoch (and learning rate per epoch) of one mini-batch run."""

    label: str
    color: str
    losses: np.ndarray  # (epochs + 1,) full-batch training loss, epoch 0 first
    excess: np.ndarray  # losses - min_loss (what the log plots show)
    lrs: np.ndarray  # (epochs,) learning rate in effect during each epoch
    diverged: bool = False


def _train_regression(
    data: Regression,
    make_opt: Callable[[dict[str, np.ndarray]], Any],
    epochs: int,
    batch_size: int,
    seed: int,
    make_sched: Callable[[Any], Any] | None = None,
    per_step_schedule: bool = True,
) -> tuple[np.ndarray, np.ndarray, bool]:
    n, d = data.X.shape
    params = {"w": np.zeros(d), "b": np.zeros(1)}
    opt = make_opt(params)
    sched = make_sched(opt) if make_sched is not None else None
    rng = np.random.default_rng(seed)
    losses = [data.loss(params["w"], params["b"])]
    lrs: list[float] = []
    diverged = False
    for _ in range(epochs):
        lrs.append(_current_lr(opt))
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            Xb, yb = data.X[idx], data.y[idx]
            r = Xb @ params["w"] + params["b"][0] - yb
            grads = {"w": 2.0 * Xb.T @ r / len(idx), "b": np.array([2.0 * r.mean()])}
            opt.step(grads)
            if sched is not None and per_step_schedule:
                sched.step()
        if sched is not None and not per_step_schedule:
            sched.step()
        with evaluated(opt, params) as weights:
            loss = data.loss(weights["w"], weights["b"])
        if not math.isfinite(loss) or loss > 1e12:
            diverged = True
            losses.extend([math.nan] * (epochs + 1 - len(losses)))
            lrs.extend([math.nan] * (epochs - len(lrs)))
            break
        losses.append(loss)
    return np.asarray(losses), np.asarray(lrs), diverged


def _current_lr(opt: Any) -> float:
    groups = getattr(opt, "param_groups", None)
    if groups:
        lr = groups[0]["lr"]
        return float(lr) if not callable(lr) else math.nan
    return math.nan


REGRESSION_SPECS = (
    OptimizerSpec("Momentum", "SGD", dict(lr=0.01, momentum=0.9)),
    OptimizerSpec("Adam", "Adam", dict(lr=0.05)),
    OptimizerSpec("RMSprop", "RMSprop", dict(lr=0.01)),
    # Adam's lr, constant: what averaging does to its mini-batch noise floor
    OptimizerSpec("Adam+EMA", "Adam+EMA", dict(lr=0.05, decay=0.95)),
    OptimizerSpec("Schedule-Free", "AdamWScheduleFree", dict(lr=0.05, warmup_steps=16)),
    OptimizerSpec("Lookahead", "Lookahead(Adam)", dict(lr=0.05, k=5, alpha=0.5)),
)


def regression_runs(
    epochs: int = 40, batch_size: int = 32, seed: int = 0
) -> tuple[Regression, list[CurveRun]]:
    """SGD-momentum vs Adam vs RMSprop on mini-batch linear regression
    (parameters passed as a dict ``{"w": ..., "b": ...}``), and Adam at the same
    constant lr with an EMA of its weights, Schedule-Free AdamW and Lookahead(Adam),
    each evaluated on its averaged weights where it keeps them."""
    data = make_regression(seed=seed)
    runs = []
    for spec in REGRESSION_SPECS:
        losses, lrs, div = _train_regression(data, spec.make, epochs, batch_size, seed + 1)
        runs.append(
            CurveRun(spec.label, spec.color, losses, losses - data.min_loss, lrs, div)
        )
    return data, runs


SCHEDULE_COLORS = {
    "constant": "#7f7f7f",
    "step": "#1f77b4",
    "exponential": "#2ca02c",
    "cosine": "#d62728",
}


def schedule_runs(
    epochs: int = 40, batch_size: int = 32, lr: float = 0.01, momentum: float = 0.9,
    seed: int = 0,
) -> tuple[Regression, list[CurveRun]]:
    """SGD-momentum on the noisy regression with constant, step, exponential
    and cosine learning-rate decay (``fusedopt.schedules``' torch-style
    schedulers, stepped once per epoch).

    With mini-batch noise a constant learning rate stalls at a noise floor;
    decaying it lets the iterates settle closer to the least-squares solution.
    """
    from fusedopt import schedules

    data = make_regression(seed=seed)
    makers: dict[str, Callable[[Any], Any] | None] = {
        "constant": None,
        "step": lambda o: schedules.StepLR(o, step_size=max(1, epochs // 4), gamma=0.3),
        "exponential": lambda o: schedules.ExponentialLR(
            o, gamma=0.01 ** (1.0 / epochs)
        ),
        "cosine": lambda o: schedules.CosineAnnealingLR(o, T_max=epochs),
    }
    desc = {
        "constant": f"constant lr={_fmt(lr)}",
        "step": f"StepLR(step_size={max(1, epochs // 4)}, gamma=0.3)",
        "exponential": f"ExponentialLR(gamma={0.01 ** (1.0 / epochs):.3f})",
        "cosine": f"CosineAnnealingLR(T_max={epochs})",
    }
    runs = []
    for name, make_sched in makers.items():
        losses, lrs, div = _train_regression(
            data,
            lambda p: _fusedopt().SGD(p, lr=lr, momentum=momentum),
            epochs, batch_size, seed + 1,
            make_sched=make_sched, per_step_schedule=False,
        )
        runs.append(
            CurveRun(desc[name], SCHEDULE_COLORS[name], losses,
                     losses - data.min_loss, lrs, div)
        )
    return data, runs


# --------------------------------------------------------------------------- #
# weight initialisation: activation scale through a deep network
# --------------------------------------------------------------------------- #
@dataclass
class InitStats:
    label: str
    color: str
    stds: np.ndarray  # (depth + 1,) std of the activations, input first
    width: int  # units per layer


def init_activation_stats(
    depth: int = 12, width: int = 256, batch: int = 512, seed: int = 0
) -> list[InitStats]:
    """Push a random batch through ``depth`` dense layers and record the
    activations' standard deviation after each layer, for:

    * tanh with N(0, 0.01²) weights (shrinks to zero),
    * tanh with Xavier/Glorot-normal weights, gain 5/3 (stays put),
    * ReLU with Xavier/Glorot-normal weights, gain 1 (halves each layer's power),
    * ReLU with Kaiming/He-normal weights (stays put).
    """
    from .. import init

    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=(batch, width))
    def relu(z: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(z, 0.0)
        return out

    def small_normal(W: np.ndarray, r: np.random.Generator) -> np.ndarray:
        W[...] = r.normal(0.0, 0.01, W.shape)
        return W

    Act = Callable[[np.ndarray], np.ndarray]
    Fill = Callable[[np.ndarray, np.random.Generator], np.ndarray]
    configs: list[tuple[str, str, Act, Fill]] = [
        ("tanh, N(0, 0.01²)", "#9467bd", np.tanh, small_normal),
        ("tanh, Xavier normal (gain 5/3)", "#ff7f0e", np.tanh,
         lambda W, r: init.xavier_normal(W, gain="tanh", rng=r)),
        ("ReLU, Xavier normal (gain 1)", "#7f7f7f", relu,
         lambda W, r: init.xavier_normal(W, rng=r)),
        ("ReLU, Kaiming normal", "#1f77b4", relu,
         lambda W, r: init.kaiming_normal(W, nonlinearity="relu", rng=r)),
    ]
    out = []
    for label, color, act, fill in configs:
        r = np.random.default_rng(seed + 1)
        h = x0
        stds = [float(h.std())]
        for _ in range(depth):
            W = np.empty((width, width))
            fill(W, r)
            h = act(h @ W.T)
            stds.append(float(h.std()))
        out.append(InitStats(label, color, np.asarray(stds), width))
    return out
