"""fusedopt.distributed: the MPI runs (tests/mpi_checks.py under ``mpiexec -n 2`` and ``-n 3``:
bitwise equality with a single-process optimizer, checkpoints across world sizes), and in this
process the world of one, the sharded norm's bits, the shard layout and the bad inputs."""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import fusedopt as fo
from fusedopt import _core
from conftest import assert_same_bits, assert_state_equal, low_dtype
from fusedopt.distributed import DataParallel, ShardedOptimizer, _comm, shard_bounds

SCRIPT = Path(__file__).with_name("mpi_checks.py")


def assert_same_params(got: dict[str, np.ndarray], *expected: dict[str, np.ndarray]) -> None:
    """Every named array of `got` bit for bit each of `expected`'s."""
    for exp in expected:
        assert got.keys() == exp.keys()
        for k in exp:
            assert_same_bits(got[k], exp[k], f"parameter {k!r}")


def _mpiexec() -> str:
    """The mpiexec beside this interpreter (a venv's, else its base installation's: pip's mpich
    puts it there), else on PATH; the test is skipped without it or without mpi4py."""
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install fusedopt[mpi])")
    for prefix in (Path(sys.executable).parent, Path(sys.prefix) / "bin", Path(sys.base_prefix) / "bin"):
        if (prefix / "mpiexec").exists():
            return str(prefix / "mpiexec")
    found = shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    return found


def _child_env() -> dict[str, str]:
    """The ranks import the fusedopt this process runs (tools/sanitize.sh puts its build first on
    sys.path) and use one thread each (they share the cores)."""
    here = str(Path(fo.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")


@pytest.mark.parametrize("ranks", [2, 3])
def test_mpi_runs_match_one_process(ranks):
    mpiexec = _mpiexec()
    run = subprocess.run(
        [mpiexec, "-n", str(ranks), sys.executable, str(SCRIPT)],
        capture_output=True, text=True, timeout=300, env=_child_env(),
    )
    assert run.returncode == 0 and f"OK {ranks} ranks" in run.stdout, run.stdout[-4000:] + run.stderr[-4000:]


@pytest.fixture
def no_mpi(monkeypatch):
    """comm=None means one process, as without mpi4py (and MPI is not started in pytest)."""
    monkeypatch.setattr(_comm, "_world", lambda: None)


SHAPES = {"W": (33, 5), "b": (7,), "V": (5000,), "s": ()}


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {k: np.asarray(rng.standard_normal(s), dtype=np.float32) for k, s in SHAPES.items()}


def _grads(t):
    rng = np.random.default_rng(100 + t)
    return {k: np.asarray(rng.standard_normal(s) * 4, dtype=np.float32) for k, s in SHAPES.items()}


CASES = [
    (fo.SGD, dict(lr=0.1, momentum=0.9)),
    (fo.Adam, dict(lr=1e-2, max_grad_norm=1.0)),
    (fo.AdamW, dict(lr=1e-2, weight_decay=0.1, max_grad_norm=2.0, nonfinite="skip")),
    (fo.Adam, dict(lr=1e-2, clip_value=0.5, backend="numpy")),
]


@pytest.mark.parametrize("cls, kw", CASES)
@pytest.mark.parametrize("wrapper", [DataParallel, ShardedOptimizer])
def test_world_of_one_is_the_plain_optimizer(no_mpi, cls, kw, wrapper):
    ref, got = _params(), _params()
    plain = cls(ref, **kw)
    w = wrapper(cls(got, **kw))
    assert w.comm.size == 1
    for t in range(25):
        g = _grads(t)
        if t == 4 and kw.get("nonfinite") == "skip":
            g["V"][9] = np.inf
        plain.step(g)
        w.step(g)
        assert repr(w.last_grad_norm) == repr(plain.last_grad_norm)
    assert_same_params(got, ref)
    assert w.step_count == plain.step_count and w.skipped_steps == plain.skipped_steps


@pytest.mark.parametrize("wrapper", [DataParallel, ShardedOptimizer])
def test_numpy_scalar_gradient_of_a_0d_parameter(no_mpi, wrapper):
    """As in a plain step: np.sum's NumPy scalar is a 0-d parameter's gradient."""
    def run(as_array):
        b, w = np.array(1.0, np.float32), np.ones(3, np.float32)
        opt = wrapper(fo.Adam({"b": b, "w": w}, lr=0.1))
        for t in range(3):
            gb = np.float32(0.5 * (t + 1))
            opt.step({"b": np.asarray(gb) if as_array else gb, "w": np.full(3, gb)})
        return np.concatenate([b[None], w])
    assert (run(as_array=False) == run(as_array=True)).all()


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
@pytest.mark.parametrize("wrapper, kw", [
    (functools.partial(DataParallel, average="ordered"), dict(master_weights=True, stochastic_rounding=True)),
    (functools.partial(DataParallel, average="allreduce"), dict(stochastic_rounding=True)),
    (ShardedOptimizer, dict(master_weights=True)),
    (ShardedOptimizer, {}),
], ids=["dp-ordered", "dp-allreduce", "sharded-master", "sharded"])
def test_16bit_params_in_a_world_of_one(no_mpi, dtype_name, wrapper, kw):
    """In a world of one the mean is the gradient itself: the plain optimizer's bits, norm and
    state (the 2-to-3-rank averages: tests/mpi_checks.py)."""
    dt = low_dtype(dtype_name)
    kw = dict(lr=1e-2, max_grad_norm=1.0, **kw)
    ref = {k: v.astype(dt) for k, v in _params().items()}
    got = {k: v.astype(dt) for k, v in _params().items()}
    plain = fo.AdamW(ref, **kw)
    w = wrapper(fo.AdamW(got, **kw))
    for t in range(10):
        g = {k: v.astype(dt) for k, v in _grads(t).items()}
        plain.step(g)
        w.step(g)
        assert repr(w.last_grad_norm) == repr(plain.last_grad_norm)
    assert_same_params(got, ref)
    if isinstance(w, ShardedOptimizer):
        full, want = w.consolidated_state_dict(), plain.state_dict()
        for k, st in want["state"].items():
            assert st.keys() == full["state"][k].keys()
            for name, v in st.items():
                assert (v.tobytes() == full["state"][k][name].tobytes()) if isinstance(v, np.ndarray) else v == full["state"][k][name]


def test_sharded_checkpoints_round_trip_in_one_process(no_mpi):
    ref, got = _params(), _params()
    plain = fo.AdamW(ref, lr=1e-2, max_grad_norm=2.0)
    w = ShardedOptimizer(fo.AdamW(got, lr=1e-2, max_grad_norm=2.0))
    for t in range(10):
        plain.step(_grads(t))
        w.step(_grads(t))
    full = w.consolidated_state_dict()
    expected = plain.state_dict()
    assert full["step_count"] == expected["step_count"]
    assert_state_equal(full["state"], expected["state"])
    # plain -> sharded, sharded shard -> sharded, consolidated -> plain: all continue bitwise.
    p2, p3, p4 = ({k: v.copy() for k, v in ref.items()} for _ in range(3))
    from_plain = ShardedOptimizer(fo.AdamW(p2, lr=1e-2, max_grad_norm=2.0))
    from_plain.load_state_dict(expected)
    from_shard = ShardedOptimizer(fo.AdamW(p3, lr=1e-2, max_grad_norm=2.0))
    from_shard.load_state_dict(pickle.loads(pickle.dumps(w.state_dict())))
    back = fo.AdamW(p4, lr=1e-2, max_grad_norm=2.0)
    back.load_state_dict(copy.deepcopy(full))
    for t in range(10, 20):
        for o in (plain, from_plain, from_shard, back):
            o.step(_grads(t))
    assert_same_params(ref, p2, p3, p4)


def test_a_built_optimizer_with_state_is_sharded_from_it(no_mpi):
    ref, got = _params(), _params()
    plain, other = fo.Adam(ref, lr=1e-2), fo.Adam(got, lr=1e-2)
    for t in range(3):
        plain.step(_grads(t))
        other.step(_grads(t))
    w = ShardedOptimizer(other)
    for t in range(3, 8):
        plain.step(_grads(t))
        w.step(_grads(t))
    assert_same_params(got, ref)


@pytest.mark.parametrize("wrapper", [DataParallel, ShardedOptimizer])
def test_schedulers_drive_the_wrapper(no_mpi, wrapper):
    ref, got = _params(), _params()
    plain = fo.SGD(ref, lr=0.1, momentum=0.9)
    w = wrapper(fo.SGD(got, lr=0.1, momentum=0.9))
    s1 = fo.schedules.StepLR(plain, step_size=3, gamma=0.5)
    s2 = fo.schedules.StepLR(w, step_size=3, gamma=0.5)
    for t in range(10):
        plain.step(_grads(t))
        w.step(_grads(t))
        s1.step()
        s2.step()
    assert w.param_groups[0]["lr"] == plain.param_groups[0]["lr"] == 0.1 * 0.5**3
    assert_same_params(got, ref)


def test_flat_params_step_without_copies(no_mpi):
    arena = fo.FlatParams({"W": (64, 3), "b": (3,)})
    w = ShardedOptimizer(fo.Adam([arena.flat_params], lr=1e-2))
    assert w.flat is not arena.flat_params and np.shares_memory(w.flat, arena.flat_params)
    before = arena.flat_params.copy()
    arena.grads["W"][:] = 1.0
    w.step([arena.flat_grads])
    assert not np.array_equal(before, arena.flat_params)


# ---- the sharded norm: every shard's chunks on the whole range's grid ------------------------------


def _sharded_norms(arrays, world):
    """shard_norm on `world` threads, each holding one shard (combine: a barrier and a sum)."""
    flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, np.float32)
    total = flat.size
    offsets = np.cumsum([0] + [a.size for a in arrays])
    bounds = shard_bounds(total, world)
    posted: list = [None] * world
    barrier = threading.Barrier(world)
    results: list = [None] * world

    def rank(r):
        lo, hi = bounds[r], bounds[r + 1]
        views = [flat[max(lo, a) : min(hi, b)] for a, b in zip(offsets[:-1], offsets[1:]) if max(lo, a) < min(hi, b)]

        def combine(parts):
            posted[r] = parts.copy()
            barrier.wait()
            parts[...] = sum(posted)  # each chunk has one owner: the others add 0, in any order
            barrier.wait()

        results[r] = _core.shard_norm(views, total, lo, combine)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


_NORM_CASES = [
    (dtype, sizes, scale)
    for dtype in (np.float32, np.float64)
    for sizes in ([1, 7, 33, 1000, 5000, 20000], [3], [100000, 77], [4_300_000], [0, 5000])
    for scale in (1.0,)
] + [(np.float64, [5000, 9000], 1e-160), (np.float64, [5000, 9000], 1e160)]  # the rescaled passes


@pytest.mark.parametrize("dtype, sizes, scale", _NORM_CASES)
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shard_norm_has_the_bits_of_one_norm_pass(dtype, sizes, scale, world):
    rng = np.random.default_rng(len(sizes) + world)
    arrays = [(rng.standard_normal(n) * scale).astype(dtype) for n in sizes]
    expected = _core.total_norm(arrays, 2.0)
    assert all(r == expected for r in _sharded_norms(arrays, world))


@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_shard_norm_of_16bit_shards_is_a_steps_norm(dtype_name, world):
    """16-bit gradients: the sharded norm has the bits of the norm a plain step computes."""
    dt = low_dtype(dtype_name)
    rng = np.random.default_rng(world)
    grads = [rng.standard_normal(n).astype(dt) for n in (7, 5000, 20000)]
    opt = fo.SGD([np.zeros(g.size, dt) for g in grads], lr=0.0, max_grad_norm=1e30)
    opt.step(grads)
    assert all(r == (opt.last_grad_norm, False) for r in _sharded_norms(grads, world))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_shard_norm_sees_a_nonfinite_gradient_on_any_shard(bad):
    arrays = [np.ones(9000, np.float32), np.ones(9000, np.float32)]
    arrays[1][8000] = bad
    expected = _core.total_norm(arrays, 2.0)
    assert expected[1]
    for r in _sharded_norms(arrays, 3):
        assert repr(r) == repr(expected)


def test_shard_bounds_are_whole_chunks_and_cover_the_range():
    chunk = _core.norm_chunk_size(10_000)
    assert shard_bounds(10_000, 2) == [0, 2 * chunk, 10_000]  # 3 chunks: uneven
    assert shard_bounds(10_000, 3) == [0, chunk, 2 * chunk, 10_000]
    assert shard_bounds(100, 3) == [0, 100, 100, 100]  # one chunk: the others own nothing
    big = shard_bounds(40_000_000, 3)
    assert big[0] == 0 and big[-1] == 40_000_000 and all(b % _core.norm_chunk_size(40_000_000) == 0 for b in big[:-1])


# ---- the engine's given norm ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_engine_step_takes_a_given_norm(backend):
    a, b = [np.ones(10, np.float32)], [np.ones(10, np.float32)]
    g = [np.full(10, 2.0, np.float32)]
    plain = fo.SGD(a, lr=0.1, max_grad_norm=1.0, backend=backend)
    given = fo.SGD(b, lr=0.1, max_grad_norm=1.0, backend=backend)
    plain.step(g)
    given._engine.step(g, grad_norm=(plain.last_grad_norm, False))
    assert np.array_equal(a[0], b[0]) and given.last_grad_norm == plain.last_grad_norm
    given._engine.step(g, grad_norm=(10.0 * plain.last_grad_norm, False))  # a larger norm clips harder
    plain.step(g)
    assert given.last_grad_norm == 10.0 * plain.last_grad_norm and not np.array_equal(a[0], b[0])


def test_engine_given_norm_checks():
    p = [np.ones(4, np.float32)]
    g = [np.ones(4, np.float32)]
    opt = fo.Adam(p, lr=0.1, nonfinite="skip")
    with pytest.raises(TypeError, match="grad_norm"):
        opt._engine.step(g, grad_norm=1.0)
    opt._engine.step(g, grad_norm=(float("nan"), True))  # a non-finite norm skips
    assert opt.skipped_steps == 1 and opt.step_count == 0 and np.array_equal(p[0], np.ones(4, np.float32))
    two = fo.Adam([{"params": [np.ones(4, np.float32)]}, {"params": [np.ones(4, np.float32)]}], max_grad_norm=1.0)
    with pytest.raises(ValueError, match="per-group"):
        two._engine.step([g[0], g[0]], grad_norm=(1.0, False))


def test_shard_norm_checks_the_grid():
    with pytest.raises(ValueError, match="chunk grid"):
        _core.shard_norm([np.ones(10, np.float32)], 10_000, 5, lambda parts: None)
    with pytest.raises(TypeError, match="one dtype"):
        _core.shard_norm([np.ones(10, np.float32), np.ones(10)], 20, 0, lambda parts: None)


# ---- bad inputs: TypeError / ValueError naming the argument; nothing changes ------------------------


def test_bad_inputs(no_mpi):
    with pytest.raises(TypeError, match="optimizer"):
        DataParallel(object())
    with pytest.raises(TypeError, match="one parameter dtype"):
        ShardedOptimizer(fo.SGD([np.ones(3, np.float32), np.ones(3)], lr=0.1))
    with pytest.raises(TypeError, match="stochastic_rounding is not sharded"):
        ShardedOptimizer(fo.SGD([np.ones(3, np.float16)], lr=0.1, stochastic_rounding=True))
    with pytest.raises(ValueError, match="average"):
        DataParallel(fo.SGD([np.ones(3, np.float32)], lr=0.1), average="mean")
    for wrapper in (DataParallel, ShardedOptimizer):
        with pytest.raises(TypeError, match="broadcast"):
            wrapper(fo.SGD([np.ones(3, np.float32)], lr=0.1), broadcast="yes")
    for state_dtype in ("bfloat16", "int8"):  # compressed state: refused, not dropped
        with pytest.raises(TypeError, match=f"state_dtype='{state_dtype}' is not sharded"):
            ShardedOptimizer(fo.Adam([np.ones(3, np.float32)], state_dtype=state_dtype))
    groups = [{"params": [np.ones(3, np.float32)]}, {"params": [np.ones(3, np.float32)]}]
    with pytest.raises(ValueError, match="clip_scope"):
        ShardedOptimizer(fo.Adam(groups, max_grad_norm=1.0))
    for wrapper in (DataParallel, ShardedOptimizer):
        params = _params()
        w = wrapper(fo.Adam(params, lr=0.1))
        before = {k: v.copy() for k, v in params.items()}
        g = _grads(0)
        for bad, err, what in [
            ({**g, "V": None}, ValueError, "every gradient"),
            ({k: v for k, v in g.items() if k != "b"}, ValueError, "one gradient for each"),
            ({**g, "V": g["V"][:10]}, ValueError, "grads for parameter 'V'"),
            ({**g, "V": g["V"].astype(np.float64)}, ValueError, "grads for parameter 'V'"),
            (3, TypeError, "grads"),
        ]:
            with pytest.raises(err, match=what):
                w.step(bad)
        assert w.step_count == 0
        assert_same_params(params, before)
        with pytest.raises(TypeError, match="MPI communicator"):
            pickle.dumps(w)
    w = ShardedOptimizer(fo.Adam(_params(), lr=0.1))
    sd = w.state_dict()
    sd["shard"]["world_size"] = 2
    with pytest.raises(ValueError, match="world size"):
        w.load_state_dict(sd)


def test_example_script_trains_under_mpiexec(tmp_path):
    mpiexec = _mpiexec()
    example = Path(__file__).resolve().parents[1] / "examples" / "mpi_data_parallel.py"
    ck = tmp_path / "ck.pkl"
    run = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(example), "--sharded", "--steps", "60", "--checkpoint", str(ck)],
        capture_output=True, text=True, timeout=300, env=_child_env(),
    )
    assert run.returncode == 0 and "2 rank(s), ZeRO-1: accuracy" in run.stdout, run.stdout + run.stderr
    saved = pickle.loads(ck.read_bytes())
    plain = fo.AdamW([saved["params"]], lr=3e-3)
    plain.load_state_dict(saved["optimizer"])  # a consolidated checkpoint loads into one process
    assert plain.step_count == 60


def test_docs_show_the_example_as_it_is():
    root = Path(__file__).resolve().parents[1]
    example = (root / "examples" / "mpi_data_parallel.py").read_text()
    assert "```python\n" + example + "```" in (root / "docs" / "distributed.md").read_text()
