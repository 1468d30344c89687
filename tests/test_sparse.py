"""Row-sparse gradients (fusedopt.RowSparse; docs/sparse.md): native against the NumPy reference
(bit for bit on the baseline target, within the ulp bounds on FMA targets; SparseAdam has no
fused operation and is bitwise everywhere), coalescing, only the touched rows written, threads,
state_dict / pickle round trips, and every bad input refused before anything is written.
(torch parity: tests/parity/test_sparse_parity.py.)"""

from __future__ import annotations

import copy
import pickle
from typing import Any

import fusedopt
import numpy as np
import pytest
from conftest import DTYPES, Pair, assert_snapshot_equal, assert_unchanged, make_params, snapshot, using_threads
from fusedopt import RowSparse

# Each optimizer that takes row-sparse gradients, with options that change its arithmetic.
CONFIGS: list[tuple[str, dict[str, Any]]] = [
    ("SparseAdam", {"lr": 1e-2}),
    ("SparseAdam", {"lr": 1e-2, "betas": (0.8, 0.95), "eps": 1e-6, "maximize": True}),
    ("SGD", {"lr": 1e-2}),
    ("SGD", {"lr": 1e-2, "maximize": True}),
    ("Adagrad", {"lr": 1e-2}),
    ("Adagrad", {"lr": 1e-2, "lr_decay": 0.05, "initial_accumulator_value": 0.1, "maximize": True}),
    ("Adam", {"lr": 1e-2}),
    ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.05}),
]
ULPS = {"SparseAdam": 0, "SGD": 4, "Adagrad": 3, "Adam": 4, "AdamW": 4}
# An embedding table (33-wide rows: vector tails), a 1-wide one, a 1-d parameter, a 3-d one.
SHAPES = [(200, 33), (64, 1), (17,), (9, 4, 5)]


def sparse_grads(shapes: list[tuple[int, ...]], dtype: Any, steps: int, seed: int) -> list[list[RowSparse]]:
    """Unsorted indices with repeats (int32 and int64 by turns), rows in +-[0.25, 2) on a grid of
    1/64: sums and squares are exact, so a gradient norm has the same bits however it is summed
    (native chunks, NumPy's fsum) and clipping can be compared bitwise."""
    rng = np.random.default_rng(seed)
    # Each element's sign is fixed by its place, so a row's copies never cancel (the ulp bounds
    # of the FMA targets hold for sums of like magnitude, as the dense suite's gradients are).
    signs = [rng.choice((-1.0, 1.0), s) for s in shapes]
    out = []
    for t in range(steps):
        row = []
        for i, s in enumerate(shapes):
            n = int(rng.integers(0, 2 * s[0]))
            idx = rng.integers(0, max(1, s[0] // 3) if t % 2 else s[0], size=n).astype(np.int32 if (t + i) % 2 else np.int64)
            rows = np.round(rng.uniform(0.25, 2.0, (n, *s[1:])) * 64) / 64 * signs[i][idx]
            row.append(RowSparse(idx, rows.astype(dtype)))
        out.append(row)
    return out


def name_cfg_id(p: tuple[str, dict[str, Any]]) -> str:
    return p[0] + "".join(f"-{k}" for k in p[1] if k != "lr")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name, cfg", CONFIGS, ids=[name_cfg_id(c) for c in CONFIGS])
@pytest.mark.parametrize("options", [{}, {"max_grad_norm": 100.0}, {"clip_value": 1.0}], ids=["plain", "norm", "value"])
def test_native_matches_reference(name: str, cfg: dict, dtype: Any, options: dict, target: str) -> None:
    """30 steps; bitwise on baseline (and for SparseAdam everywhere), else teacher-forced ulps."""
    params = make_params(SHAPES, dtype, seed=3)
    pair = Pair(getattr(fusedopt, name), params, cfg, **options)
    exact = target == "baseline" or ULPS[name] == 0
    for t, g in enumerate(sparse_grads(SHAPES, dtype, 30, seed=4)):
        where = f"{name} {cfg} {options} [{target}] step {t + 1}: "
        old = None if exact else pair.copy_b()
        pair.step(g, hand_out=t == 15)
        if exact:
            pair.assert_bitwise(where)
        else:
            pair.assert_within_ulp(ULPS[name], old=old, where=where)
            pair.resync()
    if options:
        want = pair.b.last_grad_norm  # None under value clipping (no norm is computed)
        if want is None:
            assert pair.a.last_grad_norm is None
        else:  # pytest 9.1's approx refuses None
            assert pair.a.last_grad_norm == pytest.approx(want, rel=1e-12)
    for p0, p in zip(params, pair.a.params):
        assert not np.array_equal(p0, p)


@pytest.mark.parametrize("name", ["SparseAdam", "SGD", "Adagrad", "Adam"])
def test_only_touched_rows_change(name: str) -> None:
    """Untouched rows of the parameter and its state keep their bits, NaN included (a row that
    were read would spread it: nothing here may even look at them)."""
    p = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    opt = getattr(fusedopt, name)([p], lr=0.1)
    opt.step(RowSparse(np.array([5, 7]), np.ones((2, 8), np.float32)))
    for arr in [p, *(v for v in opt.state.get(0, {}).values() if isinstance(v, np.ndarray))]:
        arr[50:] = np.nan
    before = [a.copy() for a in [p, *(v for v in opt.state.get(0, {}).values() if isinstance(v, np.ndarray))]]
    opt.step(RowSparse(np.array([9, 3, 9]), np.ones((3, 8), np.float32)))
    after = [p, *(v for v in opt.state.get(0, {}).values() if isinstance(v, np.ndarray))]
    for b, a in zip(before, after):
        rows = np.flatnonzero((b.view(np.uint32) != a.view(np.uint32)).any(axis=1))
        assert set(rows) <= {3, 9}, (name, rows)
    assert np.isfinite(p[:50]).all()


@pytest.mark.parametrize("name", ["SparseAdam", "SGD", "Adagrad", "Adam"])
def test_repeats_are_summed_in_the_order_given(name: str) -> None:
    """A row given several times steps as if given once with the sum of its copies, added in order."""
    rng = np.random.default_rng(1)
    idx = np.array([4, 1, 4, 4, 0, 1])
    rows = rng.standard_normal((6, 5)).astype(np.float32)
    summed = {4: (rows[0] + rows[2]) + rows[3], 1: rows[1] + rows[5], 0: rows[4]}
    p1 = rng.standard_normal((6, 5)).astype(np.float32)
    p2 = p1.copy()
    a, b = getattr(fusedopt, name)([p1], lr=0.1), getattr(fusedopt, name)([p2], lr=0.1)
    a.step(RowSparse(idx, rows))
    b.step(RowSparse(np.array(list(summed)), np.stack(list(summed.values()))))
    assert_snapshot_equal(snapshot(a), snapshot(b))


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_every_row_once_is_the_dense_step(name: str, target: str) -> None:
    """Lazy Adam and sparse SGD touch the same arithmetic as their dense step: every row given
    once (in any order) gives the dense step's bits."""
    rng = np.random.default_rng(2)
    p1 = rng.standard_normal((40, 7)).astype(np.float32)
    p2 = p1.copy()
    a, b = getattr(fusedopt, name)([p1], lr=0.1), getattr(fusedopt, name)([p2], lr=0.1)
    for _ in range(5):
        g = rng.standard_normal((40, 7)).astype(np.float32)
        order = rng.permutation(40)
        a.step(RowSparse(order, g[order]))
        b.step([g])
    assert_snapshot_equal(snapshot(a), snapshot(b))


def test_empty_gradient_counts_a_step() -> None:
    """As torch's SparseAdam: a gradient with no rows advances the parameter's step, changes nothing else."""
    p = np.ones((5, 3))
    opt = fusedopt.SparseAdam([p])
    opt.step(RowSparse(np.array([1]), np.ones((1, 3))))
    before = snapshot(opt)
    opt.step(RowSparse(np.zeros(0, np.int64), np.zeros((0, 3))))
    assert opt.state[0]["step"] == 2
    np.testing.assert_array_equal(p, before["params"][0])
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], before["state"][0]["exp_avg"])


def test_mixed_dense_and_sparse_in_one_step(target: str) -> None:
    """Adam with one parameter's gradient dense and another's row-sparse, in one call."""
    params = make_params([(30, 6), (12,)], np.float64, seed=5)
    pair = Pair(fusedopt.Adam, params, {"lr": 1e-2})
    rng = np.random.default_rng(6)
    for t in range(10):
        old = pair.copy_b()
        pair.step([RowSparse(rng.integers(0, 30, 8), rng.standard_normal((8, 6))), rng.standard_normal(12)])
        if target == "baseline":
            pair.assert_bitwise(f"step {t + 1}: ")
        else:
            pair.assert_within_ulp(4, old=old)
            pair.resync()


def test_threads_do_not_change_bits() -> None:
    """Thousands of touched rows (with repeats) on a team of threads: the bits of one thread."""
    rng = np.random.default_rng(7)
    base = rng.standard_normal((20_000, 16)).astype(np.float32)
    grads = [RowSparse(rng.integers(0, 20_000, 9000), rng.standard_normal((9000, 16)).astype(np.float32))
             for _ in range(4)]
    results = []
    for threads in (1, 2):
        p = base.copy()
        opt = fusedopt.SparseAdam([p], max_grad_norm=50.0)
        with using_threads(threads, min_parallel=1):
            for g in grads:
                opt.step(g)
        results.append(snapshot(opt))
    assert_snapshot_equal(results[0], results[1])


@pytest.mark.parametrize("how", ["state_dict", "pickle", "deepcopy"])
def test_round_trips_continue_bitwise(how: str) -> None:
    params = make_params([(50, 4), (10,)], np.float32, seed=8)
    grads = sparse_grads([(50, 4), (10,)], np.float32, 10, seed=9)
    opt = fusedopt.SparseAdam(params, lr=1e-2)
    for g in grads[:5]:
        opt.step(g)
    if how == "state_dict":
        other = fusedopt.SparseAdam([p.copy() for p in opt.params], lr=1e-2)
        other.load_state_dict(pickle.loads(pickle.dumps(opt.state_dict())))
    else:
        other = pickle.loads(pickle.dumps(opt)) if how == "pickle" else copy.deepcopy(opt)
    for g in grads[5:]:
        opt.step(g)
        other.step(g)
    assert_snapshot_equal(snapshot(other), snapshot(opt))


def test_row_sparse_helpers() -> None:
    g = RowSparse(np.array([2, 0, 2]), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    np.testing.assert_array_equal(g.to_dense((4, 2)), [[3, 4], [0, 0], [6, 8], [0, 0]])
    assert "3 indices" in repr(g)
    h = pickle.loads(pickle.dumps(g))
    np.testing.assert_array_equal(h.rows, g.rows)
    with pytest.raises(TypeError, match=r"expected 2 gradients \(a list or dict\), got one fusedopt.RowSparse"):
        fusedopt.SparseAdam([np.zeros((4, 2)), np.zeros((4, 2))]).step(g)


def test_from_torch() -> None:
    torch = pytest.importorskip("torch")
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([[1, 2, 1]])).sum().backward()
    g = RowSparse.from_torch(emb.weight.grad)
    np.testing.assert_array_equal(g.to_dense((10, 3)), emb.weight.grad.to_dense().numpy())
    with pytest.raises(ValueError, match="sparse COO"):
        RowSparse.from_torch(torch.zeros(3))


# ---------------------------------------------------------------------------------------------
# Bad inputs: TypeError/ValueError naming the gradient, nothing written (the bad gradient is the
# last parameter's, so the others were already checked and planned when it is refused).
# ---------------------------------------------------------------------------------------------

P = (6, 3)  # the last parameter's shape


def _ok(n: int = 2) -> RowSparse:
    return RowSparse(np.arange(n), np.ones((n, 3), np.float32))


BAD: dict[str, tuple[str, dict[str, Any], Any, type[Exception], str]] = {
    # (optimizer, config, the last parameter's gradient (a function of that parameter), exception, message)
    "indices-float": ("SparseAdam", {}, lambda p: RowSparse(np.array([0.0, 1.0]), np.ones((2, 3), np.float32)),
                      TypeError, r"indices: dtype float64 is not supported; use int32 or int64"),
    "indices-int16": ("SparseAdam", {}, lambda p: RowSparse(np.array([0, 1], np.int16), np.ones((2, 3), np.float32)),
                      TypeError, r"indices: dtype int16"),
    "indices-list": ("SparseAdam", {}, lambda p: RowSparse([0, 1], np.ones((2, 3), np.float32)),  # type: ignore[arg-type]
                     TypeError, r"indices: expected a numpy.ndarray"),
    "indices-2d": ("SparseAdam", {}, lambda p: RowSparse(np.array([[0, 1]]), np.ones((2, 3), np.float32)),
                   ValueError, r"indices: must be 1-d"),
    "indices-strided": ("SparseAdam", {}, lambda p: RowSparse(np.arange(4)[::2], np.ones((2, 3), np.float32)),
                        ValueError, r"indices: must be C-contiguous"),
    "indices-negative": ("SparseAdam", {}, lambda p: RowSparse(np.array([0, -1]), np.ones((2, 3), np.float32)),
                         ValueError, r"indices\[1\] = -1 is out of range for a parameter of 6 rows"),
    "indices-too-large": ("Adam", {}, lambda p: RowSparse(np.array([6], np.int32), np.ones((1, 3), np.float32)),
                          ValueError, r"indices\[0\] = 6 is out of range"),
    "rows-dtype": ("SparseAdam", {}, lambda p: RowSparse(np.arange(2), np.ones((2, 3))),
                   TypeError, r"rows: dtype float64 does not match the parameter's float32"),
    "rows-int": ("SparseAdam", {}, lambda p: RowSparse(np.arange(2), np.ones((2, 3), np.int32)),
                 TypeError, r"rows: dtype int32 is not supported"),
    "rows-width": ("SparseAdam", {}, lambda p: RowSparse(np.arange(2), np.ones((2, 4), np.float32)),
                   ValueError, r"rows: shape \(2, 4\) does not match \(len\(indices\),\) \+ the parameter's trailing shape \(2, 3\)"),
    "rows-count": ("SGD", {}, lambda p: RowSparse(np.arange(3), np.ones((2, 3), np.float32)),
                   ValueError, r"rows: shape \(2, 3\) does not match"),
    "rows-strided": ("SparseAdam", {}, lambda p: RowSparse(np.arange(2), np.ones((2, 6), np.float32)[:, ::2]),
                     ValueError, r"rows: must be C-contiguous"),
    "rows-are-the-parameter": ("SparseAdam", {}, lambda p: RowSparse(np.arange(2), p[:2]),
                               ValueError, r"parameter 2 and grads for parameter 2 share memory"),
    "dense-to-sparse-adam": ("SparseAdam", {}, lambda p: np.ones(P, np.float32),
                             TypeError, r"'sparse_adam' takes row-sparse gradients only .*use Adam for dense"),
    "rmsprop": ("RMSprop", {}, lambda p: _ok(), TypeError, r"rule 'rmsprop' does not take row-sparse gradients"),
    "sgd-momentum": ("SGD", {"momentum": 0.9}, lambda p: _ok(), ValueError, r"momentum \(param group 0\): must be 0"),
    "sgd-weight-decay": ("SGD", {"weight_decay": 0.1}, lambda p: _ok(), ValueError, r"weight_decay \(param group 0\): must be 0"),
    "adagrad-weight-decay": ("Adagrad", {"weight_decay": 0.1}, lambda p: _ok(), ValueError, r"weight_decay \(param group 0\)"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("read_state", [False, True], ids=["steady", "general"])
def test_bad_gradient_writes_nothing(case: str, read_state: bool) -> None:
    name, cfg, make, exc, match = BAD[case]
    params = [np.ones((8, 3), np.float32), np.ones(5, np.float32), np.ones(P, np.float32)]
    opt = getattr(fusedopt, name)(params, lr=0.1, **cfg)
    first: list[Any] = [np.ones((8, 3), np.float32), np.ones(5, np.float32)]
    if name == "SparseAdam":
        first = [RowSparse(np.array([1, 1]), np.ones((2, 3), np.float32)), RowSparse(np.array([4]), np.ones(1, np.float32))]
    opt.step(first + [None])
    if read_state:
        _ = opt.state
    before = snapshot(opt)
    with pytest.raises(exc, match=match) as info:
        opt.step(first + [make(params[2])])
    assert "grads for parameter 2" in str(info.value), str(info.value)
    assert_unchanged(opt, before)
    opt.step(first + [None])  # still steps


def test_indices_sharing_a_written_buffer() -> None:
    params = [np.ones((8, 3), np.float32), np.ones(P, np.float32)]
    opt = fusedopt.Adagrad(params, lr=0.1)
    opt.step([RowSparse(np.array([0]), np.ones((1, 3), np.float32))] * 2)
    opt.state[0]["sum"][0, 0] = 0.0  # an index in range, as int32 bits
    before = snapshot(opt)
    bad = RowSparse(opt.state[0]["sum"].view(np.int32).reshape(-1)[:1], np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"sum for parameter 0 and grads for parameter 1 share memory"):
        opt.step([None, bad])
    assert_unchanged(opt, before)


def test_zero_d_parameter_has_no_rows() -> None:
    opt = fusedopt.SGD([np.ones(()), np.ones((3, 2))], lr=0.1)
    with pytest.raises(ValueError, match=r"grads for parameter 0: a 0-d parameter has no rows"):
        opt.step([RowSparse(np.array([0]), np.ones(1)), None])


def test_bench_sparse_report() -> None:
    """`python -m fusedopt bench --sparse` renders its figures (the run itself is the bench's)."""
    from fusedopt.bench import report, sparse

    doc = {"rows": 1 << 20, "width": 64, "touched": 10_000, "others_cores": 0.0,
           "seconds": {"sparse_1M": 1e-3, "sparse_10K": 5e-4, "dense_10K": 2e-4, "dense_1M": 0.1},
           "sparse_vs_touched": 2.0, "dense_vs_sparse": 100.0}
    text = "\n".join(sparse.render(doc))
    assert "10000 rows touched" in text and "2.00x" in text and "100x" in text
    assert "sparse" in report.EXTRAS


@pytest.mark.torch
@pytest.mark.parametrize("name", ["SparseAdam", "SGD", "Adagrad"])
def test_torch_adapter_embedding(name: str) -> None:
    """fusedopt.torch steps nn.Embedding(sparse=True) as torch.optim does (25 steps, float64)."""
    torch = pytest.importorskip("torch")
    import fusedopt.torch as fot

    torch.manual_seed(0)
    a, b = torch.nn.Embedding(50, 8, sparse=True).double(), torch.nn.Embedding(50, 8, sparse=True).double()
    b.load_state_dict(a.state_dict())
    ours, theirs = getattr(fot, name)(b.parameters(), lr=0.1), getattr(torch.optim, name)(a.parameters(), lr=0.1)
    with torch.sparse.check_sparse_tensor_invariants():  # (torch's Adagrad warns that they are off)
        for _ in range(25):
            x = torch.randint(0, 50, (4, 6))
            for emb, opt in ((a, theirs), (b, ours)):
                opt.zero_grad()
                (emb(x) ** 2).sum().backward()
                opt.step()
    np.testing.assert_allclose(b.weight.detach().numpy(), a.weight.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_nonfinite_rows_skip_the_step() -> None:
    """The non-finite guard sees the (coalesced) rows: a NaN row skips the whole step."""
    p = np.ones((10, 4), np.float32)
    opt = fusedopt.SparseAdam([p], nonfinite="skip")
    opt.step(RowSparse(np.array([1]), np.ones((1, 4), np.float32)))
    before = snapshot(opt)
    rows = np.ones((3, 4), np.float32)
    rows[2, 1] = np.nan
    opt.step(RowSparse(np.array([2, 5, 2]), rows))
    assert opt.skipped_steps == 1
    before["skipped_steps"] = 1
    assert_unchanged(opt, before)


def test_16_bit_parameters_refuse_row_sparse_gradients() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for dtype in (ml_dtypes.bfloat16, np.float16):
        opt = fusedopt.SGD([np.ones((4, 2), dtype)], lr=0.1)
        with pytest.raises(TypeError, match=r"grads for parameter 0: row-sparse gradients need a float32 or float64"):
            opt.step(RowSparse(np.array([1]), np.ones((1, 2), dtype)))


def test_fortran_ordered_parameter_refuses_row_sparse_gradients() -> None:
    p = np.asfortranarray(np.ones((6, 3)))
    opt = fusedopt.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"grads for parameter 0: row-sparse gradients need a C-ordered parameter"):
        opt.step(RowSparse(np.array([1]), np.ones((1, 3))))
    np.testing.assert_array_equal(p, 1.0)
