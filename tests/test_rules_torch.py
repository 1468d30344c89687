"""What the general tables do not cover for torch.optim's remaining element-wise rules
(Adadelta, Rprop, ASGD) and Adam's eps form: their own hyperparameter checks (each rejected
value raises, names the argument, and changes nothing), and the parts of their semantics that
the parity tables exercise only implicitly."""

from __future__ import annotations

import math
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import SUPPORTED_TARGETS, Pair, armed, using_target


def _step_then_restore(a: Any, key: str, good: Any) -> Any:
    def call(grads: Any) -> Any:
        try:
            return a.opt.step(grads)
        finally:
            a.opt.param_groups[-1][key] = good
    return call


# (optimizer, hyperparameter, bad value, exception, message)
BAD = [
    ("Adadelta", "rho", 1.5, ValueError, r"^rho: must be in \[0, 1\]"),
    ("Adadelta", "rho", math.nan, ValueError, r"^rho: must be >= 0"),
    ("Adadelta", "rho", "0.9", TypeError, r"^rho: expected a number"),
    ("Rprop", "etas", (1.0, 0.5), ValueError, r"^etas: must satisfy 0 < etas\[0\] < 1 < etas\[1\]"),
    ("Rprop", "etas", (0.0, 1.2), ValueError, r"^etas: must satisfy"),
    ("Rprop", "etas", (0.5, 1.0), ValueError, r"^etas: must satisfy"),
    ("Rprop", "etas", (math.nan, 1.2), ValueError, r"^etas: must satisfy"),
    ("Rprop", "etas", (0.5,), ValueError, r"^etas: expected a pair \(etaminus, etaplus\)"),
    ("Rprop", "etas", (0.5, "1.2"), TypeError, r"^etas\[1\]: expected a number"),
    ("Rprop", "step_sizes", (1e-3, 1e-4), ValueError, r"^step_sizes: must satisfy 0 <= step_sizes\[0\] <= step_sizes\[1\]"),
    ("Rprop", "step_sizes", (-1e-6, 50.0), ValueError, r"^step_sizes: must satisfy"),
    ("Rprop", "step_sizes", (1e-6, math.nan), ValueError, r"^step_sizes: must satisfy"),
    ("Rprop", "step_sizes", 50.0, ValueError, r"^step_sizes: expected a pair \(step_size_min, step_size_max\)"),
    ("ASGD", "lambd", -1e-4, ValueError, r"^lambd: must be >= 0"),
    ("ASGD", "alpha", math.nan, ValueError, r"^alpha: must be >= 0"),
    ("ASGD", "t0", -1.0, ValueError, r"^t0: must be >= 0"),
    ("ASGD", "t0", None, TypeError, r"^t0: expected a number"),
    ("Adam", "eps_mode", "keras", ValueError, r"^eps_mode: must be one of \('torch', 'hat'\), got 'keras'"),
    ("Adam", "eps_mode", None, ValueError, r"^eps_mode: must be one of"),
    ("AdamW", "eps_mode", "Hat", ValueError, r"^eps_mode: must be one of"),
]


@pytest.mark.parametrize("name, hp, value, exc, match", BAD, ids=[f"{n}-{h}-{v!r}" for n, h, v, _, _ in BAD])
def test_bad_hyperparameter_in_constructor(name: str, hp: str, value: Any, exc: type, match: str) -> None:
    p = np.ones(3)
    with pytest.raises(exc, match=match):
        getattr(fusedopt, name)([p], **{hp: value})
    assert p.tobytes() == np.ones(3).tobytes()


@pytest.mark.parametrize("name, hp, value, exc, match", BAD, ids=[f"{n}-{h}-{v!r}" for n, h, v, _, _ in BAD])
def test_bad_hyperparameter_set_between_steps(name: str, hp: str, value: Any, exc: type, match: str,
                                               path: str) -> None:
    a = armed(name, path)
    good = a.twin.param_groups[-1][hp]
    a.opt.param_groups[-1][hp] = value
    where = match.replace(":", r" \(param group 1\):", 1)
    a.assert_rejected(a.grads(2), exc, where, call=_step_then_restore(a, hp, good))


def test_adadelta_rho_one_keeps_the_averages() -> None:
    """rho = 1 is torch's upper bound (inclusive): the averages never move from 0, so every
    step is delta = sqrt(eps)/sqrt(eps) * g = g."""
    p = np.array([1.0, -2.0, 0.5])
    g = np.array([0.25, -0.5, 1.0])
    opt = fusedopt.Adadelta([p], lr=0.1, rho=1.0)
    opt.step([g])
    np.testing.assert_array_equal(p, np.array([1.0, -2.0, 0.5]) - 0.1 * g)
    assert not opt.state[0]["square_avg"].any() and not opt.state[0]["acc_delta"].any()


# ---- Rprop ----


def test_rprop_step_size_starts_at_the_lr_of_the_first_step() -> None:
    """torch fills step_size with the group's lr when the state is created (a parameter's first
    step); lr does nothing afterwards, and a parameter that joins late starts from the lr then."""
    a, b = np.array([1.0, -1.0]), np.array([2.0])
    opt = fusedopt.Rprop([a, b], lr=0.1, etas=(0.5, 2.0))
    opt.step([np.array([1.0, -1.0]), None])
    np.testing.assert_array_equal(a, [0.9, -0.9])
    opt.param_groups[0]["lr"] = 0.3
    opt.step([np.array([1.0, 1.0]), np.array([-1.0])])
    np.testing.assert_array_equal(opt.state[0]["step_size"], [0.2, 0.05])  # 0.1 * etaplus, 0.1 * etaminus
    np.testing.assert_array_equal(opt.state[0]["prev"], [1.0, 0.0])  # the flipped sign is stored as 0
    np.testing.assert_array_equal(a, [0.9 - 0.2, -0.9])  # no move where the sign flipped
    np.testing.assert_array_equal(opt.state[1]["step_size"], [0.3])
    np.testing.assert_array_equal(b, [2.0 + 0.3])


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_rprop_signs_as_torch_nan_and_signed_zero(backend: str) -> None:
    """torch.sign on CPU is (x > 0) - (x < 0): a NaN gradient moves nothing and leaves the step
    size alone (its prev is NaN, so the next sign is 0 too), and -0.0 counts as no sign."""
    p = np.array([1.0, 2.0, -0.0, 3.0], np.float32)
    opt = fusedopt.Rprop([p], lr=0.5, backend=backend)
    opt.step([np.array([np.nan, 1.0, -0.0, -1.0], np.float32)])
    opt.step([np.array([1.0, 1.0, -0.0, 1.0], np.float32)])
    st = opt.state[0]
    np.testing.assert_array_equal(p.view(np.uint32), np.array([0.5, 0.9, -0.0, 3.5], np.float32).view(np.uint32))
    np.testing.assert_array_equal(st["step_size"], np.array([0.5, 0.6, 0.5, 0.25], np.float32))
    np.testing.assert_array_equal(st["prev"], np.array([1.0, 1.0, -0.0, 0.0], np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_rprop_every_sign_pairing_equals_the_reference(dtype: Any) -> None:
    """Each special gradient value after each special previous one (signs, zeros of both signs,
    NaN, infinities, a tiny value), in vector bodies and tails, on every SIMD target: the same
    bits as the NumPy reference (the loop picks the sign and step by comparisons and masks)."""
    values = np.array([1.5, -2.5, 0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30], dtype)
    first = np.tile(np.repeat(values, values.size), 4)[:197]   # prev, as the first step leaves it
    second = np.tile(np.tile(values, values.size), 4)[:197]    # every value after every prev
    params = [np.linspace(-1.0, 1.0, 197).astype(dtype)]
    for target in SUPPORTED_TARGETS:
        with using_target(target):
            pair = Pair(fusedopt.Rprop, params, {"lr": 0.01, "etas": (0.5, 1.5), "step_sizes": (1e-4, 0.1)})
            for g in (first, second, second[::-1].copy(), first):
                pair.step([g])
            pair.assert_bitwise(f"[{target}] ")


# ---- ASGD ----


def test_asgd_eta_and_mu_follow_torch_schedule() -> None:
    """eta and mu are float32-rounded values of the schedule at the step just taken; ax copies p
    while mu == 1 and averages from step t0 + 3 (mu of the step before < 1)."""
    lr, lambd, alpha, t0 = 0.1, 0.5, 0.75, 2.0
    p = np.array([1.0, -2.0])
    opt = fusedopt.ASGD([p], lr=lr, lambd=lambd, alpha=alpha, t0=t0)
    for t in range(1, 7):
        before = p.copy()
        opt.step([np.array([0.5, 0.25])])
        st = opt.state[0]
        assert st["eta"] == float(np.float32(lr / (1 + lambd * lr * t) ** alpha)), t
        assert st["mu"] == float(np.float32(1 / max(1, t - t0))), t
        assert isinstance(st["eta"], float) and isinstance(st["mu"], float)
        if t <= t0 + 2:
            np.testing.assert_array_equal(st["ax"], p)
        else:
            assert not np.array_equal(st["ax"], p) and not np.array_equal(st["ax"], before)


def test_asgd_state_dict_rejects_bad_counters() -> None:
    p = np.ones(3)
    opt = fusedopt.ASGD([p])
    opt.step([np.ones(3)])
    sd = opt.state_dict()
    for name, value, exc, match in (("eta", math.nan, ValueError, r"'eta' of parameter 0 must be finite"),
                                    ("mu", "1", TypeError, r"'mu' of parameter 0: expected a number"),
                                    ("mu", np.array([1.0, 2.0]), TypeError, r"'mu' of parameter 0: expected a number")):
        bad = {**sd, "state": {0: {**sd["state"][0], name: value}}}
        with pytest.raises(exc, match=match):
            opt.load_state_dict(bad)
    bad = {**sd, "state": {0: {k: v for k, v in sd["state"][0].items() if k != "eta"}}}
    with pytest.raises(ValueError, match=r"'eta' of parameter 0 is missing"):
        opt.load_state_dict(bad)
    assert opt.state[0]["eta"] == sd["state"][0]["eta"]


# ---- Adam's eps_mode="hat" ----


def _adam_hat_float64(p: np.ndarray, grads: list[np.ndarray], lr: float, b1: float, b2: float, eps: float,
                      amsgrad: bool = False) -> np.ndarray:
    """Kingma & Ba's epsilon-hat form, written from the paper in float64."""
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        p = p - lr_t * m / (np.sqrt(vmax if amsgrad else v) + eps)
    return p


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_hat_matches_the_paper_in_float64(dtype: Any, rtol: float, amsgrad: bool, target: str) -> None:
    rng = np.random.default_rng(5)
    p0 = rng.uniform(0.5, 2, 1000).astype(dtype)
    grads = [rng.standard_normal(1000).astype(dtype) for _ in range(30)]
    # eps large enough that the two forms differ by far more than the tolerance
    kw = dict(lr=1e-2, b1=0.8, b2=0.99, eps=1e-2)
    p = p0.copy()
    opt = fusedopt.Adam([p], lr=kw["lr"], betas=(kw["b1"], kw["b2"]), eps=kw["eps"], amsgrad=amsgrad, eps_mode="hat")
    torch_form = fusedopt.Adam([p0.copy()], lr=kw["lr"], betas=(kw["b1"], kw["b2"]), eps=kw["eps"], amsgrad=amsgrad)
    for g in grads:
        opt.step([g])
        torch_form.step([g])
    expected = _adam_hat_float64(p0, grads, amsgrad=amsgrad, **kw)
    np.testing.assert_allclose(p, expected, rtol=rtol, atol=0)
    assert np.abs(torch_form.params[0] - expected).max() > 100 * rtol


def test_adam_hat_matches_scikit_learn() -> None:
    """scikit-learn's MLP solver="adam" (AdamOptimizer) computes the epsilon-hat form, with
    b*m + (1-b)*g moments (torch's lerp rounds differently: float64 agrees to ~1e-15)."""
    so = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    rng = np.random.default_rng(6)
    shapes = [(20, 7), (7,)]
    p0 = [rng.standard_normal(s) for s in shapes]
    ours = [a.copy() for a in p0]
    theirs = [a.copy() for a in p0]
    opt = fusedopt.Adam(ours, lr=3e-3, betas=(0.9, 0.999), eps=1e-4, eps_mode="hat")
    sk = so.AdamOptimizer(theirs, learning_rate_init=3e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-4)
    for _ in range(40):
        grads = [rng.standard_normal(s) for s in shapes]
        opt.step(grads)
        sk.update_params(theirs, [g.copy() for g in grads])
    for a, b, a0 in zip(ours, theirs, p0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        assert np.abs(a - a0).max() > 1e-3  # it moved
