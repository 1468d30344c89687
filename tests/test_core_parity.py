"""Native kernels vs the NumPy reference (``backend="numpy"``), for every optimizer and every
option combination, both dtypes, every SIMD target this CPU supports, and sizes 0, 1, 15, 16,
17, 1000 (alone, and together with 0-d and 2-D arrays in one group) and 100003.

After every step the parameters and every state array are compared; the scalar state entries
('step', NAdam's 'mu_product') and the counters are compared, exactly, whenever the state is
read, which the runner does after steps 1, 2, 3, the middle one and the last. At the middle
step it reads ``opt.state``, which hands the state dicts out: before it the optimizers keep to
their own counters, after it every step re-reads the dicts, and both paths must agree with the
reference.

* ``baseline`` target: the kernels use no FMA and the reference mirrors them op for op, so the
  two must agree **bit for bit** after every step (raw bytes: -0.0 vs 0.0 counts).
* FMA targets (avx2, avx512): the kernels fuse the multiply-adds that torch fuses, the
  reference rounds the product first, so they differ by rounding only. Checked two ways:

  - teacher forcing: after each step's comparison the native values are copied into the
    reference optimizer, so every step starts from identical values and its difference is that
    step's alone; bound ``ULPS[opt]`` per element (derivation at ``FUSED_OPS``);
  - free running (no resync) over 50 steps: after step t (1-based) the bound is
    ``t * ULPS[opt]`` ulp of the running max of |value| (derivation at ``free_bound``).

Test data keep the bounds meaningful: parameters have magnitudes in [0.5, 2) and the learning
rates (<= 1e-2, adaptive steps <= ~lr) keep them there for 50 steps, and gradients have
magnitudes in [0.25, 2) with random signs, so |g| >> |weight_decay * p| and the weight-decayed
gradient never cancels to nothing (cancellation would turn one rounding of wd*p into an
arbitrarily large relative difference of d; that is rounding too, but no ulp bound on the
results could express it).
"""

from __future__ import annotations

import copy
import itertools
import os
import subprocess
import sys
import warnings
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import (
    DTYPES,
    FMA_TARGETS,
    OPTIMIZERS,
    RICH_CONFIGS,
    SUPPORTED_TARGETS,
    Pair,
    assert_snapshot_equal,
    make_grad_stream,
    make_params,
    snapshot,
    using_target,
)

STEPS = 50
SIZES = (0, 1, 15, 16, 17, 1000)
BIG = 100003
BIG_STEPS = 8  # RAdam is rectified (rho_t > 5) from step 6 on: 3 rectified steps at this size
# Many arrays of mixed sizes in one group: 0-d, empty, each SIMD-tail size, 2-D.
MIXED_SHAPES: list[tuple[int, ...]] = [(), (0,), (1,), (15,), (16,), (17,), (1000,), (3, 5)]

# ---------------------------------------------------------------------------------------------
# The per-step bound on FMA targets
# ---------------------------------------------------------------------------------------------
# FUSED_OPS[opt] = k: the fused multiply-adds on one element's dependency chain through the
# rule, counting the weight-decay FMA of the gradient (d = g + wd*p) twice where d is squared:
#   SGD      4  d = g + wd*p; buf = mom*buf + (1-damp)*d; d += mom*buf (nesterov); p += -lr*d
#               (classic: d; v = mom*v - lr*d; nesterov -mom*v_prev + (1+mom)*v: 3)
#   Adagrad  3  d (x2: sum += d*d squares it); sum = d*d + sum
#   RMSprop  6  d (x2: squared); v = (1-a)*d*d + a*v; grad_avg lerp; sqrt(v - gavg^2);
#               p += -lr*buf (momentum)
#   Adam(W)  4  d (x2: squared); m = lerp(m, d); v = (1-b2)*d*d + b2*v
#   Adamax   2  d; m = lerp(m, d)               (u = max(b2*u, |d|+eps): no fused op)
#   NAdam    4  as Adam          RAdam  4  as Adam
#   Lion     3  c = lerp(m, g); p = sign(c)*(-lr) + p*decay; m = lerp(m, g)
# Why 2k + 1 ulp: fma(x, y, z) = round(xy + z), while the two-rounding version is
# round(round(xy) + z); the inner rounding moves xy by <= 0.5 ulp and each result is within
# 0.5 ulp of its exact value, so the two differ by <= 1.5 ulp of the largest of |xy|, |z|,
# |result| (the "1 ulp of the result" folklore holds only without cancellation: a lerp that
# flips the sign of a moving average has |result| << |terms|). An input that already differs
# by e ulp passes through the linear steps with weight <= 1 and through a square with weight 2
# (hence counting d twice there). So a chain of k fused ops differs by <= 1.5k ulp, rounded up
# to 2k, plus 1 ulp for the final rounding of the stored value. "Largest term": every update
# has the form new = c*old + delta with c <= 1, so its terms are bounded by |old| and
# |new - old|; the scale is S = max(|native|, |ref|, |old|, |ref - old|) per element (old: the
# common value before the step, known exactly thanks to teacher forcing), in the array's dtype
# (np.spacing). Measured maxima on this data: 2 (SGD), 3 (Adagrad), 5 (RMSprop), 4 (Adam,
# NAdam, RAdam), 3.4 (Adamax), 1 (Lion, AdamW): the bounds hold with margin, while any real
# discrepancy (a scalar rounded to the wrong dtype, an operation in another order, a wrong
# constant) shows up as hundreds of ulp or more.
FUSED_OPS = {"SGD": 4, "Adagrad": 3, "RMSprop": 6, "Adam": 4, "AdamW": 4, "Adamax": 2, "NAdam": 4, "RAdam": 4, "Lion": 3}
# Trust-ratio rules: the per-element chain, plus the array's coefficient, a ratio of norms of
# values that differ by that chain (a relative difference of about the same size).
#   Lamb     5  d (x2: squared); m = d*beta3 + beta1*m; v; u += wd*p (coupled); p += alpha*u
FUSED_OPS.update({"Lamb": 5})
# Adadelta 6  d (x2: squared); sq = (1-rho)*d*d + rho*sq; acc likewise with delta (which carries
#             d's difference again); p += -lr*delta  (measured: 4)
# Rprop    0  no fused op: sign(g*prev) * step_size is exact, p + (-sign)*step_size one rounding
# ASGD     2  d = g + wd*p; p = -eta*d + decay*p  (ax = ax + (p - ax)*mu: no fused op)
FUSED_OPS |= {"Adadelta": 6, "Rprop": 0, "ASGD": 2}
#   LARS     4  d = g + wd*p (times trust: the norms are of p and g, equal at a common start);
#               buf = mom*buf + (1-damp)*d; d += mom*buf (nesterov); p += -lr*d
FUSED_OPS.update({"Lamb": 5, "LARS": 4})
#   Adafactor 3  var = lerp(var, g*g) (row/col factors likewise); p += coef*u (u = g/sqrt(var):
#                rounding only), and the coefficient from RMS(u)
FUSED_OPS.update({"Adafactor": 3})
ULPS = {name: 2 * k + 1 for name, k in FUSED_OPS.items()}


def free_bound(name: str, step: int) -> float:
    """Bound after `step` (1-based) free-running steps, in ulp of the running max |value|.

    Each step adds at most its own per-step difference (ULPS ulp of magnitudes that never exceed
    the running max), and differences carried from earlier steps do not grow: every state
    recurrence multiplies its old value by a coefficient <= 1 (beta, momentum, alpha,
    1 - lr*wd), max() is 1-Lipschitz, and a parameter's update depends on the state through
    factors of size ~lr (lr/denominator, lr*sign) whose own differences are tiny next to the
    parameter's ulp. Hence t * ULPS after t steps: linear, not compounding."""
    return step * ULPS[name]


# ---------------------------------------------------------------------------------------------
# The option matrix
# ---------------------------------------------------------------------------------------------


def _grid(**axes: tuple) -> list[dict[str, Any]]:
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def option_matrix() -> list[tuple[str, dict[str, Any]]]:
    """Every option combination of every optimizer (the issue's list)."""
    cases: list[tuple[str, dict[str, Any]]] = []
    for wd, mx in itertools.product((0.0, 0.05), (False, True)):
        for mom, damp, nest in ((0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.5, False), (0.9, 0.0, True)):
            cases.append(("SGD", {"lr": 1e-3, "momentum": mom, "dampening": damp, "nesterov": nest, "weight_decay": wd, "maximize": mx,
                                      "formulation": "torch"}))
        for mom, nest in ((0.0, False), (0.9, False), (0.9, True)):
            cases.append(
                ("SGD", {"lr": 1e-3, "momentum": mom, "nesterov": nest, "weight_decay": wd, "maximize": mx, "formulation": "classic"})
            )
    for c in _grid(lr_decay=(0.0, 0.05), initial_accumulator_value=(0.0, 0.1), weight_decay=(0.0, 0.05),
                   maximize=(False, True)):
        cases.append(("Adagrad", dict(lr=1e-2, **c)))
    for c in _grid(momentum=(0.0, 0.9), centered=(False, True), weight_decay=(0.0, 0.05), maximize=(False, True)):
        cases.append(("RMSprop", dict(lr=1e-3, **c)))
    for c in _grid(amsgrad=(False, True), weight_decay=(0.0, 0.05), maximize=(False, True),
                   decoupled_weight_decay=(False, True)):
        cases.append(("Adam", dict(lr=1e-3, **c)))
    for c in _grid(amsgrad=(False, True), weight_decay=(0.0, 0.05), maximize=(False, True)):
        cases.append(("AdamW", dict(lr=1e-3, **c)))
    for c in _grid(weight_decay=(0.0, 0.05), maximize=(False, True)):
        cases.append(("Adamax", dict(lr=1e-3, **c)))
    for c in _grid(decoupled_weight_decay=(False, True), weight_decay=(0.0, 0.05), momentum_decay=(4e-3, 2e-2),
                   maximize=(False, True)):
        cases.append(("NAdam", dict(lr=1e-3, **c)))
    for c in _grid(decoupled_weight_decay=(False, True), weight_decay=(0.0, 0.05), maximize=(False, True)):
        cases.append(("RAdam", dict(lr=1e-3, **c)))
    for c in _grid(weight_decay=(0.0, 0.05), maximize=(False, True)):
        cases.append(("Lion", dict(lr=1e-3, **c)))
    for c in _grid(rho=(0.9, 1.0), weight_decay=(0.0, 0.05), maximize=(False, True)):
        cases.append(("Adadelta", dict(lr=0.5, **c)))
    for c in _grid(weight_decay=(0.0, 0.05), weight_decouple=(False, True), maximize=(False, True)):
        cases.append(("Lamb", dict(lr=1e-3, **c)))
    for c in ({"fixed_decay": True, "weight_decay": 0.05, "adam": False, "max_weight_norm": 1.0},
              {"fixed_decay": False, "grad_averaging": False, "adam_debias": True, "max_weight_norm": 10.0},
              {"adam": True, "weight_decay": 0.05, "grad_averaging": True, "adam_debias": False}):
        cases.append(("Lamb", dict(lr=1e-3, **c)))
    for c in _grid(etas=((0.5, 1.2), (0.3, 1.6)), step_sizes=((1e-6, 50.0), (2e-4, 4e-3)), maximize=(False, True)):
        cases.append(("Rprop", dict(lr=1e-3, **c)))
    for c in _grid(lambd_alpha=((1e-4, 0.75), (0.05, 0.5)), t0=(1e6, 3.0), weight_decay=(0.0, 0.05),
                   maximize=(False, True)):
        lambd, alpha = c.pop("lambd_alpha")
        cases.append(("ASGD", dict(lr=1e-2, lambd=lambd, alpha=alpha, **c)))
    for c in _grid(amsgrad=(False, True), weight_decay=(0.0, 0.05), decoupled_weight_decay=(False, True)):
        cases.append(("Adam", dict(lr=1e-3, eps_mode="hat", maximize=c["amsgrad"], **c)))
    cases.append(("Adam", dict(lr=1e-3, eps_mode="torch", weight_decay=0.05)))
    for c in _grid(eps_mode=("torch", "hat"), amsgrad=(False, True)):
        cases.append(("AdamW", dict(lr=1e-3, weight_decay=0.05, maximize=True, **c)))
    for c in _grid(weight_decay=(0.0, 0.05), nesterov=(False, True), maximize=(False, True)):
        cases.append(("LARS", dict(lr=1e-3, **c)))
    for c in ({"momentum": 0.0, "dampening": 0.0, "trust_coefficient": 1e-3, "weight_decay": 0.05},
              {"momentum": 0.5, "dampening": 0.3, "trust_coefficient": 0.02}):
        cases.append(("LARS", dict(lr=1e-3, **c)))
    for c in _grid(weight_decay=(0.0, 0.05), maximize=(False, True), beta2_decay=(-0.8, -0.5)):
        cases.append(("Adafactor", dict(lr=1e-3, **c)))
    for c in ({"eps": (1e-4, 1e-3), "d": 1.0}, {"eps": (1e-3, 1e-2), "d": 1.5}):
        cases.append(("Adafactor", dict(lr=1e-3, **c)))
    return cases


_SHORT = {"momentum": "mom", "dampening": "damp", "nesterov": "nest", "weight_decay": "wd", "maximize": "max",
          "formulation": "", "lr_decay": "lrd", "initial_accumulator_value": "iav", "centered": "cent",
          "amsgrad": "ams", "decoupled_weight_decay": "dec", "momentum_decay": "md", "weight_decouple": "wdc",
          "fixed_decay": "fixed", "grad_averaging": "avg", "adam_debias": "debias", "max_weight_norm": "maxwn", "trust_coefficient": "tc", "beta2_decay": "b2d"}


def case_id(name: str, cfg: dict[str, Any]) -> str:
    parts = [name]
    for k, v in cfg.items():
        if k == "lr" or v is False or v == 0.0:
            continue
        short = _SHORT.get(k, k)
        parts.append(str(v) if isinstance(v, str) else short if v is True else
                     f"{short}{v[0]:g},{v[1]:g}" if isinstance(v, tuple) else f"{short}{v:g}")
    return "-".join(parts)


MATRIX = option_matrix()
MATRIX_PARAMS = [pytest.param(name, cfg, id=case_id(name, cfg)) for name, cfg in MATRIX]


def test_matrix_covers_every_optimizer_and_option() -> None:
    assert {name for name, _ in MATRIX} == set(OPTIMIZERS)
    seen: dict[str, set[tuple[str, Any]]] = {}
    for name, cfg in MATRIX:
        seen.setdefault(name, set()).update((k, v) for k, v in cfg.items())
    # each boolean option appears both ways, each numeric option with two values
    for name, options in seen.items():
        for key in {k for k, _ in options}:
            if key != "lr":
                assert len({v for k, v in options if k == key}) >= 2, (name, key)
    assert len(MATRIX) == len({case_id(n, c) for n, c in MATRIX})


# ---------------------------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------------------------


def run_parity(name: str, cfg: dict[str, Any], shapes: list[tuple[int, ...]], dtype: Any, target: str,
               steps: int, seed: int) -> Pair:
    """Step native and reference side by side; bitwise on baseline, else teacher-forced ulp bound.

    The state is re-read (all entries re-listed, scalars compared) after steps 1, 2, 3, steps/2
    and the last; at steps/2 through ``opt.state``, which hands it out, so the first half runs
    on the optimizers' own counters and the second re-reads the state dicts every step: both
    paths get compared, every step, on the live arrays."""
    params = make_params(shapes, dtype, seed)
    grads = make_grad_stream(shapes, dtype, steps, seed + 1)
    pair = Pair(OPTIMIZERS[name], params, cfg)
    exact = target == "baseline"
    prefix = f"{name} {cfg} {np.dtype(dtype).name} [{target}] step"
    look_at = {1, 2, 3, steps // 2, steps}
    for t, g in enumerate(grads):
        where = f"{prefix} {t + 1}: "
        old = None if exact else pair.copy_b()
        pair.step(g, look=t + 1 in look_at, hand_out=t + 1 == steps // 2)
        if exact:
            pair.assert_bitwise(where)
        else:
            pair.assert_within_ulp(ULPS[name], old=old, where=where)
            pair.resync()
    # the run did something: every non-empty parameter moved
    for p0, p in zip(params, pair.a.params):
        if p.size:
            assert not np.array_equal(p0, p), f"{name} {cfg}: a parameter did not change"
    return pair


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, cfg", MATRIX_PARAMS)
def test_option_matrix_mixed_sizes_one_group(name: str, cfg: dict, dtype: Any, target: str) -> None:
    """Every option combination, 50 steps, many arrays of mixed sizes (0-d, 0, 1, 15, 16, 17,
    1000, 2-D) in one group: one native call per step covers them all."""
    run_parity(name, cfg, MIXED_SHAPES, dtype, target, STEPS, seed=11)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_each_size_alone(name: str, dtype: Any, target: str) -> None:
    """Sizes 0, 1, 15, 16, 17, 1000, each the only parameter of its optimizer (defaults and the
    all-options configuration), 50 steps."""
    for size in SIZES:
        for cfg in ({}, RICH_CONFIGS[name]):
            cfg = {"lr": 1e-3, **cfg}
            run_parity(name, cfg, [(size,)], dtype, target, STEPS, seed=100 + size)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_size_100003(name: str, dtype: Any, target: str) -> None:
    """One array of 100003 elements (parallel path at the default minimum size, odd tail), with
    every option on, 8 steps (enough to reach RAdam's rectified branch)."""
    if name == "RAdam":
        beta2 = 0.999
        t = BIG_STEPS
        rho_inf = 2 / (1 - beta2) - 1
        assert rho_inf - 2 * t * beta2**t / (1 - beta2**t) > 5, "RAdam must reach its rectified branch"
    run_parity(name, RICH_CONFIGS[name], [(BIG,)], dtype, target, BIG_STEPS, seed=7)


# Late in training a bias correction (1 - beta^t, or its square root) is exactly 1 in the working
# precision, and the kernels skip the division by it (element_math.hpp, divides_by); the
# reference still divides. Betas of 0.5 and 0.75 bring that step early: 1 - beta^t is 1 in float32
# from t = 25 (beta 0.5) and 61 (0.75), in float64 from 54 and 131 (its square root, Adam's, a few
# steps earlier); 140 steps cross each, RAdam rectified throughout the second half (rho_inf = 7
# with beta2 = 0.75).
LATE_STEPS = 140
LATE_CASES = [("Adam", {"betas": (0.5, 0.75)}), ("Adam", {"betas": (0.75, 0.5), "amsgrad": True}),
              ("Adam", {"betas": (0.5, 0.75), "eps_mode": "hat"}), ("AdamW", {"betas": (0.75, 0.5), "weight_decay": 0.05}),
              ("NAdam", {"betas": (0.5, 0.75)}), ("RAdam", {"betas": (0.5, 0.75)})]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, cfg", [pytest.param(n, c, id=case_id(n, c)) for n, c in LATE_CASES])
def test_bias_corrections_that_reach_one(name: str, cfg: dict, dtype: Any, target: str) -> None:
    """Before, at and after the step where a bias correction becomes exactly 1: the same values
    as the reference, which divides by it throughout."""
    run_parity(name, {"lr": 1e-3, **cfg}, MIXED_SHAPES, dtype, target, LATE_STEPS, seed=31)


# ---------------------------------------------------------------------------------------------
# Free running on the FMA targets
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fma_target", FMA_TARGETS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("variant", ["defaults", "all-options"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_free_running_fma_within_linear_bound(name: str, variant: str, dtype: Any, fma_target: str) -> None:
    """50 steps without resynchronising: after step t, |native - ref| <= t * ULPS ulp of the
    running max |value| (see free_bound): rounding differences must not compound."""
    cfg = {"lr": 1e-3} if variant == "defaults" else RICH_CONFIGS[name]
    params = make_params(MIXED_SHAPES, dtype, 21)
    grads = make_grad_stream(MIXED_SHAPES, dtype, STEPS, 22)
    with using_target(fma_target):
        pair = Pair(OPTIMIZERS[name], params, cfg)
        running: dict[str, np.ndarray] = {}
        for t, g in enumerate(grads, start=1):
            pair.step(g, look=t in (1, 2, STEPS // 2, STEPS), hand_out=t == STEPS // 2)
            for label, va, vb in pair.arrays():
                m = np.maximum(np.abs(va), np.abs(vb))
                running[label] = np.maximum(running[label], m) if label in running else m
            pair.assert_within_ulp(
                free_bound(name, t), floor=running, where=f"{name} {variant} [{fma_target}] free-running step {t}: "
            )


def test_fma_targets_do_differ_from_reference() -> None:
    """Sanity for the ulp tests: on an FMA target the kernels really fuse (Adam with coupled
    weight decay differs from the two-rounding reference somewhere), on baseline they do not."""
    params = make_params([(1000,)], np.float32, 5)
    grads = make_grad_stream([(1000,)], np.float32, 3, 6)
    for t in SUPPORTED_TARGETS:
        with using_target(t):
            pair = Pair(OPTIMIZERS["Adam"], params, {"lr": 1e-3, "weight_decay": 0.05})
            for g in grads:
                pair.step(g)
            differs = any(va.tobytes() != vb.tobytes() for _, va, vb in pair.arrays())
            assert differs == (t != "baseline"), f"target {t}: differs={differs}"


# ---------------------------------------------------------------------------------------------
# Target selection
# ---------------------------------------------------------------------------------------------


def _python(code: str, **env_changes: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_default_target_is_best_supported() -> None:
    info = fusedopt.runtime_info()
    if not os.environ.get("FUSEDOPT_TARGET", "").strip():
        # this process too (every test that changes the target restores it)
        assert info["active_target"] == info["best_target"]
    proc = _python(
        "import fusedopt; i = fusedopt.runtime_info(); "
        "print(i['active_target'], i['best_target'], fusedopt.get_target(), ','.join(i['supported_targets']))",
        FUSEDOPT_TARGET=None,
    )
    assert proc.returncode == 0, proc.stderr
    active, best, current, supported = proc.stdout.split()
    assert active == best == current
    assert best == supported.split(",")[-1], "the best target is the last (widest) supported one"


def test_env_var_forces_target() -> None:
    proc = _python("import fusedopt; print(fusedopt.get_target(), fusedopt.runtime_info()['active_target'])",
                   FUSEDOPT_TARGET="baseline")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["baseline", "baseline"]


def test_env_var_unknown_target_fails_import() -> None:
    proc = _python("import fusedopt", FUSEDOPT_TARGET="bogus")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "FUSEDOPT_TARGET" in proc.stderr and "bogus" in proc.stderr


def test_set_target_unknown_raises() -> None:
    before = fusedopt.get_target()
    with pytest.raises(ValueError, match=r"target must be one of .*'bogus'"):
        fusedopt.set_target("bogus")
    assert fusedopt.get_target() == before


def test_set_target_roundtrip(target: str) -> None:
    assert fusedopt.get_target() == target
    assert fusedopt.runtime_info()["active_target"] == target


@pytest.mark.skipif(not FMA_TARGETS, reason="one target only: nothing to switch to")
@pytest.mark.parametrize("name", ["SGD", "Adam", "Lamb"])
def test_set_target_applies_to_a_steady_optimizer(name: str) -> None:
    """set_target applies to every later step, of optimizers already stepping too: one stepped
    on an FMA target, then on the baseline target, continues as its copy does (a copy plans its
    steps afresh; the baseline's bits are not the FMA targets'). A steady optimizer once kept
    the kernels of the target it first stepped on, so the bench's SIMD comparison timed one."""
    shapes = [(17,), (3, 40)]
    grads = make_grad_stream(shapes, np.float32, 6, 2)
    with using_target(FMA_TARGETS[-1]):
        opt = OPTIMIZERS[name](make_params(shapes, np.float32, 1), lr=0.01, **({"momentum": 0.9} if name == "SGD" else {}))
        for g in grads[:3]:
            opt.step(g)
    twin = copy.deepcopy(opt)
    with using_target("baseline"):
        for g in grads[3:]:
            opt.step(g)
            twin.step(g)
    assert_snapshot_equal(snapshot(opt), snapshot(twin))
    with using_target(FMA_TARGETS[-1]):  # and back
        again = copy.deepcopy(opt)
        for o in (opt, again):
            o.step(grads[0])
    assert_snapshot_equal(snapshot(opt), snapshot(again))


KNOWN = ("baseline", "avx2", "avx512")
UNSUPPORTED = [t for t in KNOWN if t not in SUPPORTED_TARGETS]


@pytest.mark.skipif(not UNSUPPORTED, reason="every known target is supported on this machine")
@pytest.mark.parametrize("name", UNSUPPORTED or ["none"])
def test_unsupported_known_target_warns_and_falls_back(name: str) -> None:
    best = fusedopt.runtime_info()["best_target"]
    before = fusedopt.get_target()
    try:
        with pytest.warns(RuntimeWarning, match=name):
            got = fusedopt.set_target(name)
        assert got == best
        assert fusedopt.get_target() == best
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fusedopt.set_target(before)


def test_comparison_helpers_detect_differences() -> None:
    """The checks above are only as good as the helpers: a 1-ulp change, -0.0 vs 0.0 and a NaN
    are differences for the bitwise check, and a difference beyond the bound fails the ulp one."""
    from conftest import assert_same_bits, check_ulp_bound

    x = np.linspace(-1, 1, 33, dtype=np.float32)
    y = x.copy()
    y[5] = np.nextafter(y[5], np.float32(2))
    with pytest.raises(AssertionError):
        assert_same_bits(y, x, "x")
    z = np.zeros(3)
    with pytest.raises(AssertionError, match="different bits"):
        assert_same_bits(-z, z, "zeros")
    check_ulp_bound(y, x, np.zeros_like(x), 1)  # 1 ulp: within a bound of 1
    far = x.copy()
    far[7] += 5 * np.spacing(far[7])
    with pytest.raises(AssertionError, match="bound 3 ulp"):
        check_ulp_bound(far, x, np.zeros_like(x), 3)
    nan = x.copy()
    nan[0] = np.nan
    with pytest.raises(AssertionError, match="NaN mismatch"):
        check_ulp_bound(nan, x, np.zeros_like(x), 3)
    check_ulp_bound(nan, nan.copy(), np.zeros_like(x), 3)  # NaN where NaN is fine
