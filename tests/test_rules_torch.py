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
from conftest import armed


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
