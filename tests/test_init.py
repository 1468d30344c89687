"""fusedopt.init: gains, fans, and the statistics of the four initialisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fusedopt import init

FLOATS = [np.float32, np.float64]


# --------------------------------------------------------------------------- #
# calculate_gain / fan_in_and_fan_out
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name, param, expected",
    [
        ("linear", None, 1.0),
        ("identity", None, 1.0),
        ("conv2d", None, 1.0),
        ("conv_transpose3d", None, 1.0),
        ("sigmoid", None, 1.0),
        ("tanh", None, 5.0 / 3.0),
        ("relu", None, math.sqrt(2.0)),
        ("leaky_relu", None, math.sqrt(2.0 / (1 + 0.01**2))),
        ("leaky_relu", 0.2, math.sqrt(2.0 / (1 + 0.04))),
        ("leaky_relu", 0, math.sqrt(2.0)),
        ("selu", None, 0.75),
        ("ReLU", None, math.sqrt(2.0)),
    ],
)
def test_calculate_gain(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("bad", ["swish", "", None, 3])
def test_calculate_gain_rejects_unknown_nonlinearity(bad):
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain(bad)


@pytest.mark.parametrize("bad", ["0.1", True, float("nan"), [0.1]])
def test_calculate_gain_rejects_bad_slope(bad):
    with pytest.raises(ValueError, match="param"):
        init.calculate_gain("leaky_relu", bad)


@pytest.mark.parametrize(
    "shape, fans",
    [
        ((10, 20), (20, 10)),
        ((64, 32, 3, 3), (32 * 9, 64 * 9)),
        ((8, 4, 5), (20, 40)),
        ((16, 3, 2, 3, 4), (3 * 24, 16 * 24)),
        ((1, 1), (1, 1)),
    ],
)
def test_fan_in_and_fan_out(shape, fans):
    assert init.fan_in_and_fan_out(shape) == fans
    assert init.fan_in_and_fan_out(np.empty(shape)) == fans
    numpy_ints = tuple(np.int64(s) for s in shape)
    assert init.fan_in_and_fan_out(numpy_ints) == fans
    assert all(type(f) is int for f in init.fan_in_and_fan_out(numpy_ints))


@pytest.mark.parametrize("shape", [(), (5,), np.empty(7)])
def test_fan_needs_two_dimensions(shape):
    with pytest.raises(ValueError, match="2 dimensions"):
        init.fan_in_and_fan_out(shape)


def test_fan_rejects_non_integer_shape():
    with pytest.raises(TypeError, match="shape"):
        init.fan_in_and_fan_out((3.5, 2))


# --------------------------------------------------------------------------- #
# statistics
# --------------------------------------------------------------------------- #
def _check_normal(a: np.ndarray, std: float) -> None:
    """Mean and variance of N(0, std²) samples, within 6 standard errors."""
    x = a.astype(np.float64).ravel()
    n = x.size
    assert abs(x.mean()) < 6 * std / math.sqrt(n)
    # Var(sample variance) = 2 std^4 / (n - 1) for a normal
    assert abs(x.var() - std**2) < 6 * math.sqrt(2.0 / (n - 1)) * std**2
    # a normal's fourth moment is 3 std^4: tells normal from uniform
    kurt = np.mean(x**4) / x.var() ** 2
    assert kurt == pytest.approx(3.0, abs=0.1)


def _check_uniform(a: np.ndarray, bound: float) -> None:
    """U(-bound, bound): inside the bounds, reaching near them, mean and variance."""
    x = a.astype(np.float64).ravel()
    n = x.size
    var = bound**2 / 3
    assert np.all(np.abs(x) <= bound * (1 + 1e-6))
    assert np.abs(x).max() > 0.999 * bound
    assert abs(x.mean()) < 6 * math.sqrt(var / n)
    # Var(x²) = E x⁴ - (E x²)² = bound⁴/5 - bound⁴/9
    assert abs(x.var() - var) < 6 * math.sqrt((1 / 5 - 1 / 9) * bound**4 / n)
    kurt = np.mean(x**4) / x.var() ** 2
    assert kurt == pytest.approx(1.8, abs=0.05)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(300, 500), (64, 50, 3, 3)])
def test_xavier_uniform_statistics(dtype, shape):
    w = np.empty(shape, dtype)
    out = init.xavier_uniform(w, rng=np.random.default_rng(1))
    assert out is w and w.dtype == dtype
    fan_in, fan_out = init.fan_in_and_fan_out(shape)
    _check_uniform(w, math.sqrt(6.0 / (fan_in + fan_out)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_xavier_normal_statistics_with_gain(dtype):
    w = np.empty((400, 600), dtype)
    init.xavier_normal(w, gain=init.calculate_gain("tanh"), rng=np.random.default_rng(2))
    _check_normal(w, 5.0 / 3.0 * math.sqrt(2.0 / 1000))


def test_xavier_gain_may_be_a_nonlinearity_name():
    a = init.xavier_uniform(np.empty((30, 40)), gain="relu", rng=5)
    b = init.xavier_uniform(np.empty((30, 40)), gain=math.sqrt(2.0), rng=5)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "kwargs, gain",
    [
        (dict(nonlinearity="relu"), math.sqrt(2.0)),
        (dict(), math.sqrt(2.0)),  # torch's default: leaky_relu with a=0
        (dict(a=0.2), math.sqrt(2.0 / 1.04)),
        (dict(nonlinearity="tanh"), 5.0 / 3.0),
        (dict(nonlinearity="linear"), 1.0),
    ],
)
def test_kaiming_normal_statistics(dtype, kwargs, gain):
    w = np.empty((500, 400), dtype)
    out = init.kaiming_normal(w, rng=np.random.default_rng(3), **kwargs)
    assert out is w
    _check_normal(w, gain / math.sqrt(400))


@pytest.mark.parametrize("dtype", FLOATS)
def test_kaiming_uniform_fan_out_conv(dtype):
    w = np.empty((96, 32, 3, 3), dtype)
    init.kaiming_uniform(w, mode="fan_out", nonlinearity="relu", rng=np.random.default_rng(4))
    _check_uniform(w, math.sqrt(2.0) * math.sqrt(3.0 / (96 * 9)))


def test_kaiming_uniform_fan_in():
    w = np.empty((300, 700))
    init.kaiming_uniform(w, nonlinearity="relu", rng=0)
    _check_uniform(w, math.sqrt(6.0 / 700))


def test_kaiming_preserves_relu_signal_through_layers():
    """The point of He initialisation: E[h²] stays put through ReLU layers."""
    rng = np.random.default_rng(0)
    h = rng.normal(size=(128, 128))
    second_moments = []
    for _ in range(10):
        W = init.kaiming_normal(np.empty((128, 128)), nonlinearity="relu", rng=rng)
        z = h @ W.T
        h = np.maximum(z, 0)
        second_moments.append(np.mean(z**2))
    assert 0.5 < second_moments[-1] / second_moments[0] < 2.0


# --------------------------------------------------------------------------- #
# in place, views, reproducibility
# --------------------------------------------------------------------------- #
def test_fills_non_contiguous_views_in_place():
    base = np.zeros((40, 60))
    view = base.T  # (60, 40), fans (40, 60): same as base's but swapped
    init.kaiming_uniform(view, nonlinearity="relu", rng=0)
    assert np.all(base != 0)
    assert np.abs(base).max() <= math.sqrt(6.0 / 40)
    strided = np.zeros((20, 30))
    init.xavier_normal(strided[::2, ::3], rng=1)
    assert np.count_nonzero(strided) == 10 * 10
    assert np.all(strided[1::2] == 0)


def test_same_seed_same_values_and_generator_advances():
    a = init.xavier_normal(np.empty((8, 9)), rng=np.random.default_rng(7))
    b = init.xavier_normal(np.empty((8, 9)), rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(init.xavier_normal(np.empty((8, 9)), rng=7), a)
    rng = np.random.default_rng(7)
    first = init.xavier_normal(np.empty((8, 9)), rng=rng)
    second = init.xavier_normal(np.empty((8, 9)), rng=rng)
    assert not np.array_equal(first, second)
    # no rng: fresh entropy, still the right shape and finite
    c = init.kaiming_normal(np.empty((8, 9)))
    assert np.all(np.isfinite(c)) and not np.array_equal(c, a)


def test_float32_values_match_float64_draws():
    a = init.kaiming_uniform(np.empty((16, 16), np.float32), rng=3)
    b = init.kaiming_uniform(np.empty((16, 16), np.float64), rng=3)
    np.testing.assert_array_equal(a, b.astype(np.float32))


@pytest.mark.parametrize(
    "fn", [init.xavier_uniform, init.xavier_normal, init.kaiming_uniform, init.kaiming_normal]
)
def test_zero_size_arrays_are_left_alone(fn):
    w = np.empty((0, 5))
    assert fn(w, rng=0) is w


# --------------------------------------------------------------------------- #
# errors name the argument
# --------------------------------------------------------------------------- #
ALL = [init.xavier_uniform, init.xavier_normal, init.kaiming_uniform, init.kaiming_normal]


@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.int64), np.zeros((3, 4), bool),
                                 np.zeros((3, 4), np.complex128)])
def test_non_float_arrays_are_a_type_error(fn, bad):
    with pytest.raises(TypeError, match="array.*dtype"):
        fn(bad, rng=0)


@pytest.mark.parametrize("fn", ALL)
def test_non_arrays_are_a_type_error(fn):
    with pytest.raises(TypeError, match="array must be a numpy.ndarray"):
        fn([[0.0, 0.0], [0.0, 0.0]], rng=0)


@pytest.mark.parametrize("fn", ALL)
def test_one_dimensional_arrays_are_a_value_error(fn):
    with pytest.raises(ValueError, match="2 dimensions"):
        fn(np.zeros(5), rng=0)


@pytest.mark.parametrize("fn", ALL)
def test_read_only_arrays_are_a_value_error(fn):
    w = np.zeros((3, 4))
    w.flags.writeable = False
    with pytest.raises(ValueError, match="array is read-only"):
        fn(w, rng=0)


@pytest.mark.parametrize("fn", [init.kaiming_uniform, init.kaiming_normal])
def test_bad_mode_and_nonlinearity(fn):
    with pytest.raises(ValueError, match="mode"):
        fn(np.zeros((3, 4)), mode="fan_avg", rng=0)
    with pytest.raises(ValueError, match="nonlinearity"):
        fn(np.zeros((3, 4)), nonlinearity="gelu", rng=0)


@pytest.mark.parametrize("fn", ALL)
def test_bad_rng(fn):
    with pytest.raises(TypeError, match="rng"):
        fn(np.zeros((3, 4)), rng=np.random.RandomState(0))


def test_bad_gain():
    with pytest.raises(TypeError, match="gain"):
        init.xavier_uniform(np.zeros((3, 4)), gain=[1.0], rng=0)
    with pytest.raises(ValueError, match="nonlinearity"):
        init.xavier_uniform(np.zeros((3, 4)), gain="swish", rng=0)
    with pytest.raises(ValueError, match="gain"):
        init.xavier_normal(np.zeros((3, 4)), gain=float("inf"), rng=0)


# --------------------------------------------------------------------------- #
# torch.nn.init agrees on gains, fans and scales
# --------------------------------------------------------------------------- #
@pytest.mark.torch
def test_matches_torch_conventions():
    torch = pytest.importorskip("torch")
    for name in ["linear", "conv1d", "sigmoid", "tanh", "relu", "selu"]:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 0.3) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.3))
    for shape in [(7, 5), (6, 4, 3), (8, 3, 5, 5), (4, 2, 3, 3, 3)]:
        t = torch.empty(shape)
        assert init.fan_in_and_fan_out(shape) == torch.nn.init._calculate_fan_in_and_fan_out(t)
    # same bound for the uniform ones: the max |value| of a big draw
    g = torch.Generator().manual_seed(0)
    for ours, theirs, kw in [
        (init.xavier_uniform, torch.nn.init.xavier_uniform_, dict(gain=1.3)),
        (init.kaiming_uniform, torch.nn.init.kaiming_uniform_,
         dict(a=0.1, mode="fan_out", nonlinearity="leaky_relu")),
    ]:
        shape = (200, 30, 3, 3)
        t = theirs(torch.empty(shape, dtype=torch.float64), generator=g, **kw).numpy()
        a = ours(np.empty(shape), rng=0, **kw)
        assert np.abs(a).max() == pytest.approx(np.abs(t).max(), rel=1e-3)
    for ours, theirs, kw in [
        (init.xavier_normal, torch.nn.init.xavier_normal_, dict(gain=0.7)),
        (init.kaiming_normal, torch.nn.init.kaiming_normal_, dict(nonlinearity="relu")),
    ]:
        shape = (300, 200)
        t = theirs(torch.empty(shape, dtype=torch.float64), generator=g, **kw).numpy()
        a = ours(np.empty(shape), rng=0, **kw)
        assert a.std() == pytest.approx(t.std(), rel=0.02)
