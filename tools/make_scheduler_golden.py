#!/usr/bin/env python
"""Regenerate tests/data/scheduler_golden.json from torch 2.13's lr_scheduler.

Every case drives a plain torch optimizer (SGD with momentum, Adam, or
Adagrad, which has neither momentum nor betas) holding one dummy tensor per
param group, with a scheduler built from a JSON spec, and records after
construction and after every call:

    lr      the lr of every param group
    mom     momentum / beta1 of every group (CyclicLR and OneCycleLR cases)
    epoch   scheduler.last_epoch
    raises  index of the call that raised ValueError (OneCycleLR past total_steps)

A case either calls ``step()`` ``steps`` times (``step(metric)`` with
``metrics`` for ReduceLROnPlateau) or calls ``step(epoch)`` for each entry of
``epochs`` (the closed forms). Spec encodings understood by both this tool and
tests/test_schedulers.py:

    {"$fn": "lambda e: 0.95 ** e"}          a Python lambda, eval'ed with math
    {"$sched": ["LinearLR", {...kwargs}]}    a sub-scheduler on the same optimizer

Floats are written with repr (round-trip exact, no rounding). The tests read
the file with no torch installed and compare with atol 1e-12.

Usage:  python tools/make_scheduler_golden.py [--check]
  --check  regenerate in memory and compare with the file on disk (exit 1 on
           any difference) instead of writing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "scheduler_golden.json"
sys.path.insert(0, str(ROOT / "tests"))  # the spec format, shared with tests/test_schedulers.py

from scheduler_specs import decode  # noqa: E402

REQUIRED_TORCH = "2.13.0"
FORMAT = 1

G2 = [{"lr": 0.1}, {"lr": 0.025}]
G3 = [{"lr": 1.0}, {"lr": 0.3}, {"lr": 0.007}]
SGD = {"kind": "sgd", "lr": 0.1, "momentum": 0.9}
ADAM = {"kind": "adam", "lr": 0.001, "betas": [0.9, 0.999]}
PLAIN = {"kind": "plain", "lr": 0.01}
N = 120


def fn(src: str) -> dict[str, str]:
    return {"$fn": src}


def sub(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"$sched": [name, kwargs]}


def opt(base: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {**base, "groups": groups}


def _metrics(kind: str, n: int = N) -> list[float]:
    """Deterministic metric streams with plateaus (no RNG: portable)."""
    out = []
    for t in range(n):
        wiggle = 0.01 * math.sin(1.7 * t) * math.cos(0.3 * t)
        if kind == "decay":  # decreasing, flattening: plateaus late
            out.append(1.0 / (1.0 + 0.2 * t) + wiggle)
        elif kind == "steps":  # flat stretches with occasional drops
            out.append(1.0 - 0.1 * (t // 25) + 0.001 * (t % 3))
        elif kind == "accuracy":  # for mode='max'
            out.append(min(0.9, 0.5 + 0.01 * t) + wiggle)
        else:  # "flat"
            out.append(0.5)
    return out


def case(name: str, cls: str, optimizer: dict[str, Any], kwargs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "cls": cls, "optimizer": optimizer, "kwargs": kwargs}
    if "epochs" not in extra:
        c["steps"] = N
    c.update(extra)
    return c


CASES: list[dict[str, Any]] = [
    # StepLR
    case("StepLR-30", "StepLR", opt(SGD, G2), {"step_size": 30}),
    case("StepLR-7-half", "StepLR", opt(SGD, G3), {"step_size": 7, "gamma": 0.5}),
    case("StepLR-1-097", "StepLR", opt(ADAM, G2), {"step_size": 1, "gamma": 0.97}),
    case("StepLR-grow", "StepLR", opt(PLAIN, G2), {"step_size": 25, "gamma": 1.5}),
    case("StepLR-resume", "StepLR", opt(SGD, [{"lr": 0.05, "initial_lr": 0.1}, {"lr": 0.01, "initial_lr": 0.02}]),
         {"step_size": 10, "gamma": 0.5, "last_epoch": 15}),
    case("StepLR-epochs", "StepLR", opt(SGD, G2), {"step_size": 7, "gamma": 0.5}, epochs=[3, 7, 20, 6, 0, 150, 14]),
    # MultiStepLR
    case("MultiStepLR-30-80", "MultiStepLR", opt(SGD, G2), {"milestones": [30, 80]}),
    case("MultiStepLR-dups", "MultiStepLR", opt(ADAM, G3), {"milestones": [5, 5, 20, 60, 61], "gamma": 0.5}),
    case("MultiStepLR-unsorted", "MultiStepLR", opt(PLAIN, G2), {"milestones": [90, 10, 40], "gamma": 0.3}),
    case("MultiStepLR-epochs", "MultiStepLR", opt(SGD, G2), {"milestones": [2, 5, 5, 9], "gamma": 0.5},
         epochs=[1, 2, 5, 4, 9, 100, 0]),
    # ConstantLR
    case("ConstantLR-default", "ConstantLR", opt(SGD, G2), {}),
    case("ConstantLR-half-40", "ConstantLR", opt(ADAM, G3), {"factor": 0.5, "total_iters": 40}),
    case("ConstantLR-zero-iters", "ConstantLR", opt(PLAIN, G2), {"factor": 0.1, "total_iters": 0}),
    case("ConstantLR-long", "ConstantLR", opt(SGD, G3), {"factor": 0.25, "total_iters": 200}),
    case("ConstantLR-epochs", "ConstantLR", opt(SGD, G2), {"factor": 0.25, "total_iters": 4},
         epochs=[1, 4, 3, 10, 0]),
    # LinearLR
    case("LinearLR-default", "LinearLR", opt(SGD, G2), {}),
    case("LinearLR-warmup", "LinearLR", opt(ADAM, G3), {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 40}),
    case("LinearLR-decay", "LinearLR", opt(SGD, G2), {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 100}),
    case("LinearLR-to-zero", "LinearLR", opt(PLAIN, G3), {"start_factor": 0.5, "end_factor": 0.0, "total_iters": 60}),
    case("LinearLR-epochs", "LinearLR", opt(SGD, G2), {"start_factor": 0.2, "total_iters": 10},
         epochs=[0, 5, 3, 10, 50]),
    # ExponentialLR
    case("ExponentialLR-095", "ExponentialLR", opt(SGD, G2), {"gamma": 0.95}),
    case("ExponentialLR-half", "ExponentialLR", opt(ADAM, G3), {"gamma": 0.5}),
    case("ExponentialLR-grow", "ExponentialLR", opt(PLAIN, G2), {"gamma": 1.02}),
    case("ExponentialLR-resume", "ExponentialLR",
         opt(SGD, [{"lr": 0.05, "initial_lr": 0.1}, {"lr": 0.2, "initial_lr": 0.3}]), {"gamma": 0.9, "last_epoch": 4}),
    case("ExponentialLR-epochs", "ExponentialLR", opt(SGD, G2), {"gamma": 0.9}, epochs=[1, 10, 4, 0, 99]),
    # PolynomialLR
    case("PolynomialLR-default", "PolynomialLR", opt(SGD, G2), {}),
    case("PolynomialLR-100-2", "PolynomialLR", opt(ADAM, G3), {"total_iters": 100, "power": 2.0}),
    case("PolynomialLR-60-half", "PolynomialLR", opt(PLAIN, G2), {"total_iters": 60, "power": 0.5}),
    case("PolynomialLR-37-3.3", "PolynomialLR", opt(SGD, G3), {"total_iters": 37, "power": 3.3}),
    case("PolynomialLR-epochs", "PolynomialLR", opt(SGD, G2), {"total_iters": 20, "power": 2.0},
         epochs=[0, 5, 19, 20, 25, 7]),
    # CosineAnnealingLR (periodic past T_max)
    case("CosineAnnealingLR-periodic", "CosineAnnealingLR", opt(SGD, G2), {"T_max": 30}),
    case("CosineAnnealingLR-etamin", "CosineAnnealingLR", opt(ADAM, G3), {"T_max": 100, "eta_min": 0.001}),
    case("CosineAnnealingLR-short", "CosineAnnealingLR", opt(PLAIN, G3), {"T_max": 7, "eta_min": 0.05}),
    case("CosineAnnealingLR-Tmax1", "CosineAnnealingLR", opt(SGD, G2), {"T_max": 1, "eta_min": 0.01}),
    case("CosineAnnealingLR-resume", "CosineAnnealingLR",
         opt(SGD, [{"lr": 0.08, "initial_lr": 0.1}, {"lr": 0.01, "initial_lr": 0.02}]),
         {"T_max": 40, "last_epoch": 10}),
    case("CosineAnnealingLR-epochs", "CosineAnnealingLR", opt(SGD, G2), {"T_max": 10, "eta_min": 0.001},
         epochs=[1, 5, 10, 15, 20, 3, 0]),
    # CosineAnnealingWarmRestarts
    case("CAWR-10", "CosineAnnealingWarmRestarts", opt(SGD, G2), {"T_0": 10}),
    case("CAWR-3x2", "CosineAnnealingWarmRestarts", opt(ADAM, G3), {"T_0": 3, "T_mult": 2, "eta_min": 0.001}),
    case("CAWR-5x3", "CosineAnnealingWarmRestarts", opt(PLAIN, G2), {"T_0": 5, "T_mult": 3}),
    case("CAWR-7-etamin", "CosineAnnealingWarmRestarts", opt(SGD, G3), {"T_0": 7, "eta_min": 0.01}),
    case("CAWR-resume", "CosineAnnealingWarmRestarts",
         opt(SGD, [{"lr": 0.05, "initial_lr": 0.1}, {"lr": 0.005, "initial_lr": 0.01}]),
         {"T_0": 4, "T_mult": 2, "last_epoch": 6}),
    case("CAWR-epochs", "CosineAnnealingWarmRestarts", opt(SGD, G2), {"T_0": 4, "T_mult": 2, "eta_min": 0.001},
         epochs=[0.5, 3.25, 4, 12.7, 40.0, 1, 27.5, 2]),
    case("CAWR-epochs-mult1", "CosineAnnealingWarmRestarts", opt(SGD, G2), {"T_0": 4},
         epochs=[0.5, 3.25, 4, 12.7, 40.0, 1]),
    # CyclicLR (per batch; momentum cycled inversely)
    case("CyclicLR-triangular", "CyclicLR", opt(SGD, G2),
         {"base_lr": [0.01, 0.001], "max_lr": [0.1, 0.02], "step_size_up": 10}, mom=True),
    case("CyclicLR-triangular2", "CyclicLR", opt(SGD, G3),
         {"base_lr": 0.001, "max_lr": [0.1, 0.05, 0.02], "step_size_up": 7, "step_size_down": 13,
          "mode": "triangular2", "base_momentum": [0.8, 0.7, 0.85], "max_momentum": 0.95}, mom=True),
    case("CyclicLR-exp-range-betas", "CyclicLR", opt(ADAM, G2),
         {"base_lr": [0.0001, 0.00005], "max_lr": 0.001, "step_size_up": 5, "mode": "exp_range", "gamma": 0.99},
         mom=True),
    case("CyclicLR-custom-iterations", "CyclicLR", opt(SGD, G2),
         {"base_lr": [0.01, 0.002], "max_lr": [0.1, 0.05], "step_size_up": 6, "step_size_down": 3,
          "scale_fn": fn("lambda x: 1.0 / (1.0 + 0.01 * x)"), "scale_mode": "iterations"}, mom=True),
    case("CyclicLR-no-momentum", "CyclicLR", opt(PLAIN, G2),
         {"base_lr": [0.01, 0.002], "max_lr": [0.1, 0.05], "step_size_up": 8, "cycle_momentum": False}),
    case("CyclicLR-epochs", "CyclicLR", opt(SGD, G2),
         {"base_lr": [0.01, 0.001], "max_lr": [0.1, 0.02], "step_size_up": 4, "mode": "triangular2"},
         epochs=[7, 3, 50, 0, 99, 8], mom=True),
    # OneCycleLR (per batch; bounces at total_steps, raises past it)
    case("OneCycleLR-cos", "OneCycleLR", opt(SGD, G2), {"max_lr": [1.0, 0.1], "total_steps": 110},
         steps=111, mom=True),
    case("OneCycleLR-linear-3phase-betas", "OneCycleLR", opt(ADAM, G3),
         {"max_lr": 0.01, "epochs": 10, "steps_per_epoch": 12, "anneal_strategy": "linear", "three_phase": True},
         steps=121, mom=True),
    case("OneCycleLR-plain", "OneCycleLR", opt(PLAIN, G3),
         {"max_lr": [0.5, 0.05, 0.005], "total_steps": 150, "pct_start": 0.25, "div_factor": 10.0,
          "final_div_factor": 100.0, "cycle_momentum": False}, steps=151),
    case("OneCycleLR-3phase-cos-momenta", "OneCycleLR", opt(SGD, G2),
         {"max_lr": 0.3, "total_steps": 101, "three_phase": True, "base_momentum": [0.8, 0.7],
          "max_momentum": [0.95, 0.9]}, steps=102, mom=True),
    case("OneCycleLR-pct0", "OneCycleLR", opt(SGD, G2), {"max_lr": 0.2, "total_steps": 100, "pct_start": 0.0},
         steps=101, mom=True),
    case("OneCycleLR-pct1", "OneCycleLR", opt(ADAM, G2), {"max_lr": 0.002, "total_steps": 100, "pct_start": 1.0},
         steps=99, mom=True),
    case("OneCycleLR-epochs", "OneCycleLR", opt(SGD, G2), {"max_lr": [1.0, 0.1], "total_steps": 50},
         epochs=[0, 10, 14, 15, 49, 3, 50], mom=True),
    # ReduceLROnPlateau
    case("ReduceLROnPlateau-default", "ReduceLROnPlateau", opt(SGD, G2), {}, metrics=_metrics("decay")),
    case("ReduceLROnPlateau-max-abs", "ReduceLROnPlateau", opt(ADAM, G3),
         {"mode": "max", "factor": 0.5, "patience": 3, "cooldown": 2, "threshold": 0.01, "threshold_mode": "abs"},
         metrics=_metrics("accuracy")),
    case("ReduceLROnPlateau-eps-minlr", "ReduceLROnPlateau", opt(PLAIN, G3),
         {"factor": 0.2, "patience": 0, "min_lr": [0.01, 0.001, 0.0], "eps": 0.0005}, metrics=_metrics("flat")),
    case("ReduceLROnPlateau-steps", "ReduceLROnPlateau", opt(SGD, G2),
         {"factor": 0.5, "patience": 2, "cooldown": 1, "threshold": 0.05}, metrics=_metrics("steps")),
    # LambdaLR
    case("LambdaLR-exp", "LambdaLR", opt(SGD, G2), {"lr_lambda": fn("lambda e: 0.95 ** e")}),
    case("LambdaLR-per-group", "LambdaLR", opt(ADAM, G2),
         {"lr_lambda": [fn("lambda e: e // 30"), fn("lambda e: 0.95 ** e")]}),
    case("LambdaLR-warmup", "LambdaLR", opt(PLAIN, G3), {"lr_lambda": fn("lambda e: min(1.0, (e + 1) / 10)")}),
    case("LambdaLR-invsqrt", "LambdaLR", opt(SGD, G3), {"lr_lambda": fn("lambda e: 1.0 / math.sqrt(e + 1.0)")}),
    case("LambdaLR-epochs", "LambdaLR", opt(SGD, G2), {"lr_lambda": fn("lambda e: 0.9 ** e")}, epochs=[4, 1, 30, 0]),
    # MultiplicativeLR
    case("MultiplicativeLR-095", "MultiplicativeLR", opt(SGD, G2), {"lr_lambda": fn("lambda e: 0.95")}),
    case("MultiplicativeLR-step", "MultiplicativeLR", opt(ADAM, G3),
         {"lr_lambda": fn("lambda e: 0.99 if e % 10 else 0.5")}),
    case("MultiplicativeLR-per-group", "MultiplicativeLR", opt(PLAIN, G2),
         {"lr_lambda": [fn("lambda e: 0.98"), fn("lambda e: 1.0 + 0.01 * math.sin(e)")]}),
    # SequentialLR (next scheduler restarts at its closed form)
    case("SequentialLR-warmup-exp", "SequentialLR", opt(SGD, G2),
         {"schedulers": [sub("LinearLR", start_factor=0.1, total_iters=10), sub("ExponentialLR", gamma=0.97)],
          "milestones": [10]}),
    case("SequentialLR-const-cosine", "SequentialLR", opt(ADAM, G3),
         {"schedulers": [sub("ConstantLR", factor=0.1, total_iters=20), sub("CosineAnnealingLR", T_max=50)],
          "milestones": [20]}),
    case("SequentialLR-three", "SequentialLR", opt(PLAIN, G2),
         {"schedulers": [sub("LinearLR", start_factor=0.5, total_iters=5), sub("StepLR", step_size=10, gamma=0.5),
                         sub("PolynomialLR", total_iters=30, power=2.0)], "milestones": [5, 40]}),
    case("SequentialLR-lambda-cawr", "SequentialLR", opt(SGD, G3),
         {"schedulers": [sub("LambdaLR", lr_lambda=fn("lambda e: (e + 1) / 8")),
                         sub("CosineAnnealingWarmRestarts", T_0=10, T_mult=2, eta_min=0.0001)], "milestones": [7]}),
    case("SequentialLR-multistep", "SequentialLR", opt(SGD, G2),
         {"schedulers": [sub("ExponentialLR", gamma=0.9), sub("MultiStepLR", milestones=[0, 5, 30], gamma=0.5)],
          "milestones": [30]}),
    # ChainedScheduler (recursive forms multiply)
    case("ChainedScheduler-const-exp", "ChainedScheduler", opt(SGD, G2),
         {"schedulers": [sub("ConstantLR", factor=0.1, total_iters=2), sub("ExponentialLR", gamma=0.9)]}),
    case("ChainedScheduler-linear-cosine", "ChainedScheduler", opt(ADAM, G3),
         {"schedulers": [sub("LinearLR", start_factor=0.1, total_iters=10), sub("CosineAnnealingLR", T_max=40,
                                                                                 eta_min=0.001)]}),
    case("ChainedScheduler-three", "ChainedScheduler", opt(PLAIN, G2),
         {"schedulers": [sub("StepLR", step_size=10, gamma=0.5),
                         sub("MultiplicativeLR", lr_lambda=fn("lambda e: 0.99")),
                         sub("ConstantLR", factor=0.5, total_iters=15)]}),
]


# --------------------------------------------------------------------------
# Running torch.
# --------------------------------------------------------------------------
def torch_optimizer(torch: Any, spec: dict[str, Any]) -> Any:
    groups = [{"params": [torch.zeros(1)], **g} for g in spec["groups"]]
    if spec["kind"] == "sgd":
        return torch.optim.SGD(groups, lr=spec["lr"], momentum=spec["momentum"])
    if spec["kind"] == "adam":
        return torch.optim.Adam(groups, lr=spec["lr"], betas=tuple(spec["betas"]))
    return torch.optim.Adagrad(groups, lr=spec["lr"])


def torch_scheduler(module: Any, optimizer: Any, name: str, kwargs: dict[str, Any]) -> Any:
    def build_sub(n: str, kw: dict[str, Any]) -> Any:
        return torch_scheduler(module, optimizer, n, kw)

    kw = {k: decode(v, build_sub) for k, v in kwargs.items()}
    if name == "ChainedScheduler":
        return module.ChainedScheduler(kw.pop("schedulers"), optimizer=optimizer, **kw)
    return getattr(module, name)(optimizer, **kw)


def momenta(optimizer: Any) -> list[float]:
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in optimizer.param_groups]


def run(torch: Any, c: dict[str, Any]) -> dict[str, Any]:
    o = torch_optimizer(torch, c["optimizer"])
    s = torch_scheduler(torch.optim.lr_scheduler, o, c["cls"], c["kwargs"])
    want_mom = bool(c.get("mom"))
    rec: dict[str, Any] = {"lr": [], "epoch": [], "raises": None}
    if want_mom:
        rec["mom"] = []

    def snap() -> None:
        lrs = [float(g["lr"]) for g in o.param_groups]
        assert lrs == [float(x) for x in s.get_last_lr()], c["name"]
        rec["lr"].append(lrs)
        rec["epoch"].append(getattr(s, "last_epoch", None))  # ChainedScheduler has none
        if want_mom:
            rec["mom"].append([float(m) for m in momenta(o)])

    snap()
    rec["state_keys"] = sorted(s.state_dict())
    calls = c.get("epochs") or [None] * c["steps"]
    for i, arg in enumerate(calls):
        try:
            if "metrics" in c:
                s.step(c["metrics"][i])
            elif arg is None:
                s.step()
            else:
                s.step(arg)
        except ValueError:
            rec["raises"] = i
            break
        snap()
    return rec


def generate(torch: Any) -> dict[str, Any]:
    cases = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # step-order and epoch-deprecation warnings
        for c in CASES:
            cases.append({**c, "expect": run(torch, c)})
    return {"format": FORMAT, "torch": torch.__version__, "cases": cases}


def dumps(data: dict[str, Any]) -> str:
    """One case per line: readable diffs, compact file. json writes floats with repr."""
    head = {k: v for k, v in data.items() if k != "cases"}
    lines = [json.dumps(c, separators=(",", ":"), allow_nan=False) for c in data["cases"]]
    body = ",\n".join(lines)
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"cases":[\n' + body + "\n]}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the file on disk instead of writing")
    args = ap.parse_args()
    import torch

    if torch.__version__.split("+")[0] != REQUIRED_TORCH:
        print(f"warning: golden data is defined by torch {REQUIRED_TORCH}, found {torch.__version__}", file=sys.stderr)
    text = dumps(generate(torch))
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    if args.check:
        same = OUT.exists() and OUT.read_text() == text
        print(f"{OUT.relative_to(ROOT)}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}: {len(CASES)} cases, {len(text) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
