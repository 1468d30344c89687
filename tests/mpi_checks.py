"""Run by tests/test_distributed.py under ``mpiexec -n N`` (N = 2, 3): each rank checks its own
parameters against a single-process optimizer stepped with the same averaged gradients,
computed as the wrappers define the average: ((g_0 + g_1) + ... + g_{N-1}) / N in float32, in
rank order. Rank 0 prints "OK <N> ranks" and the state figures on success; any failure raises (and MPI
aborts every rank, so the launcher sees a nonzero exit)."""

from __future__ import annotations

import sys
import traceback

import numpy as np
from mpi4py import MPI

import fusedopt as fo
from fusedopt.distributed import DataParallel, ShardedOptimizer

WORLD = MPI.COMM_WORLD
RANK, SIZE = WORLD.Get_rank(), WORLD.Get_size()
STEPS = 24
SHAPES = {"W1": (33, 5), "b1": (7,), "W2": (1000,), "s": (1,), "W3": (2500, 3)}  # 8673: 3 chunks of 4096
TINY = {"a": (5,), "b": (3, 3)}  # one chunk: ranks after the first own nothing
NAN_STEP = 5


def init(shapes):
    rng = np.random.default_rng(7)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def grads_of(shapes, step, rank):
    rng = np.random.default_rng([step, rank, 11])
    g = {k: (rng.standard_normal(s) * 3).astype(np.float32) for k, s in shapes.items()}
    if step == NAN_STEP and rank == SIZE - 1:
        g[next(iter(shapes))].flat[2] = np.nan
    return g


def mean_grads(shapes, step, size, with_nan):
    """The average as the wrappers compute it: rank order, float32, then / size."""
    out = {}
    for k in shapes:
        acc = grads_of(shapes, step, 0)[k] if with_nan or step != NAN_STEP else _clean(shapes, step, 0)[k]
        acc = acc.copy()
        for r in range(1, size):
            gr = grads_of(shapes, step, r) if with_nan or step != NAN_STEP else _clean(shapes, step, r)
            acc = acc + gr[k]
        out[k] = acc / np.float32(size)
    return out


def _clean(shapes, step, rank):
    g = grads_of(shapes, step, rank)
    for v in g.values():
        np.nan_to_num(v, copy=False)
    return g


def local_grads(shapes, step, rank, with_nan):
    return grads_of(shapes, step, rank) if with_nan or step != NAN_STEP else _clean(shapes, step, rank)


def groups(params, two_groups):
    if not two_groups:
        return params
    weights = {k: v for k, v in params.items() if not k.startswith("b") and k != "s"}
    rest = {k: v for k, v in params.items() if k not in weights}
    return [{"params": weights}, {"params": rest, "weight_decay": 0.0}]


CONFIGS = {
    "sgd_momentum": (fo.SGD, dict(lr=0.05, momentum=0.9, dampening=0.1), False, False),
    "adam": (fo.Adam, dict(lr=1e-2, amsgrad=True), False, False),
    "adamw_clip": (fo.AdamW, dict(lr=1e-2, weight_decay=0.1, max_grad_norm=5.0, clip_scope="global"), True, False),
    "adamw_clip_skip": (fo.AdamW, dict(lr=1e-2, max_grad_norm=5.0, nonfinite="skip"), False, True),
}


def reference(cls, kw, two, nan, shapes, steps, size, sched=False):
    params = init(shapes)
    opt = cls(groups(params, two), **kw)
    s = fo.schedules.StepLR(opt, step_size=5, gamma=0.5) if sched else None
    norms = []
    for t in range(steps):
        opt.step(mean_grads(shapes, t, size, nan))
        norms.append(opt.last_grad_norm)
        if s:
            s.step()
    return params, opt, norms


def run(wrapper, cls, kw, two, nan, shapes, comm, steps, first=0, params=None, sched=False, **wkw):
    params = init(shapes) if params is None else params
    w = wrapper(cls(groups(params, two), **kw), comm, **wkw)
    s = fo.schedules.StepLR(w, step_size=5, gamma=0.5) if sched else None
    norms = []
    for t in range(first, first + steps):
        w.step(local_grads(shapes, t, comm.Get_rank(), nan))
        norms.append(w.last_grad_norm)
        if s:
            s.step()
    return params, w, norms


def same(a, b, what):
    for k in a:
        if not np.array_equal(a[k], b[k]):
            diff = np.flatnonzero(a[k].reshape(-1) != b[k].reshape(-1))
            raise AssertionError(f"rank {RANK}: {what}: {k} differs at {diff[:5]} of {a[k].size}")


def same_state(ref_sd, sd, what):
    assert ref_sd["step_count"] == sd["step_count"] and ref_sd["skipped_steps"] == sd["skipped_steps"], what
    assert ref_sd["state"].keys() == sd["state"].keys(), what
    for k, st in ref_sd["state"].items():
        assert st.keys() == sd["state"][k].keys(), (what, k)
        for n, v in st.items():
            ok = np.array_equal(v, sd["state"][k][n]) if isinstance(v, np.ndarray) else v == sd["state"][k][n]
            assert ok, f"{what}: state {k}/{n}"


def check_steps():
    figures = []
    for name, (cls, kw, two, nan) in CONFIGS.items():
        for shapes in (SHAPES, TINY):
            ref, ref_opt, ref_norms = reference(cls, kw, two, nan, shapes, STEPS, SIZE)
            for wrapper in (DataParallel, ShardedOptimizer):
                got, w, norms = run(wrapper, cls, kw, two, nan, shapes, WORLD, STEPS)
                same(ref, got, f"{name} {wrapper.__name__}")
                assert list(map(repr, norms)) == list(map(repr, ref_norms)), f"{name} {wrapper.__name__}: last_grad_norm {norms[-1]} vs {ref_norms[-1]}"
                assert w.skipped_steps == ref_opt.skipped_steps == (1 if nan else 0)
            if shapes is SHAPES:
                full = sum(v.nbytes for st in ref_opt.state.values() for v in st.values() if isinstance(v, np.ndarray))
                figures.append(f"{name}:{w.state_bytes()}/{full}")
                total = WORLD.allreduce(w.state_bytes())
                assert total == full, (name, total, full)
    # One MPI_Allreduce: identical on every rank (and, at 2 ranks, g0 + g1 == g1 + g0: the ordered bits).
    cls, kw, two, nan = CONFIGS["adamw_clip"]
    got, _, _ = run(DataParallel, cls, kw, two, nan, SHAPES, WORLD, 8, average="allreduce")
    everyone = WORLD.allgather(got)
    for other in everyone:
        same(everyone[0], other, "allreduce ranks agree")
    if SIZE == 2:
        same(reference(cls, kw, two, nan, SHAPES, 8, SIZE)[0], got, "allreduce at 2 ranks")
    # FlatParams: the flat buffer is the parameter, no copies.
    arena = fo.FlatParams(SHAPES)
    arena.flat_params[:] = np.random.default_rng(3).standard_normal(arena.flat_params.size)
    plain = arena.flat_params.copy()
    ref_opt = fo.Adam([plain], lr=1e-2, max_grad_norm=1.0)
    w = ShardedOptimizer(fo.Adam([arena.flat_params], lr=1e-2, max_grad_norm=1.0), WORLD)
    for t in range(STEPS):
        g = [np.random.default_rng([t, r]).standard_normal(plain.size).astype(np.float32) for r in range(SIZE)]
        acc = g[0].copy()
        for r in range(1, SIZE):
            acc = acc + g[r]
        ref_opt.step([acc / np.float32(SIZE)])
        w.step([g[RANK]])
        assert w.last_grad_norm == ref_opt.last_grad_norm
    assert np.array_equal(plain, arena.flat_params), "FlatParams sharded"
    return figures


def check_schedulers():
    cls, kw, two, nan = CONFIGS["adamw_clip"]
    ref = reference(cls, kw, two, nan, SHAPES, STEPS, SIZE, sched=True)[0]
    for wrapper in (DataParallel, ShardedOptimizer):
        same(ref, run(wrapper, cls, kw, two, nan, SHAPES, WORLD, STEPS, sched=True)[0], f"StepLR {wrapper.__name__}")


def check_checkpoints():
    """Save at one world size, resume at another (and in one process), bitwise."""
    half = STEPS // 2
    for name in ("adam", "adamw_clip_skip", "adamw_clip"):
        cls, kw, two, nan = CONFIGS[name]
        ref, ref_opt, _ = reference(cls, kw, two, nan, SHAPES, STEPS, SIZE)
        for saver_size in (SIZE, SIZE - 1):
            sub = WORLD.Split(0 if RANK < saver_size else MPI.UNDEFINED, RANK)
            saved = None
            if sub != MPI.COMM_NULL:
                # The first half averaged over SIZE ranks' gradients, computed by `saver_size` ranks:
                # each sub-rank stands in with its own gradients only when saver_size == SIZE.
                params = init(SHAPES)
                w = ShardedOptimizer(cls(groups(params, two), **kw), sub)
                for t in range(half):
                    if saver_size == SIZE:
                        w.step(local_grads(SHAPES, t, RANK, nan))
                    else:  # fewer ranks: each steps with the full mean (the mean of equal copies is itself)
                        w.step(mean_grads(SHAPES, t, SIZE, nan))
                if saver_size == SIZE:  # per-rank shard state_dict: same world size, bitwise
                    again = ShardedOptimizer(cls(groups(init(SHAPES), two), **kw), sub)
                    again.load_state_dict(w.state_dict())
                    same_state(w.inner.state_dict(), again.inner.state_dict(), f"{name} shard round trip")
                consolidated = w.consolidated_state_dict()
                saved = (consolidated, params) if sub.Get_rank() == 0 else None
                sub.Free()
            saved = WORLD.bcast(saved, root=0)
            consolidated, params = saved
            # Resume on every rank at world size SIZE.
            params = {k: v.copy() for k, v in params.items()}
            w = ShardedOptimizer(cls(groups(params, two), **kw), WORLD)
            w.load_state_dict(consolidated)
            for t in range(half, STEPS):
                w.step(local_grads(SHAPES, t, RANK, nan))
            same(ref, params, f"{name}: saved at {saver_size} ranks, resumed at {SIZE}")
            same_state(ref_opt.state_dict(), w.consolidated_state_dict() or ref_opt.state_dict(), f"{name} state")
            # ... and in one process, as a plain optimizer.
            plain_params = {k: v.copy() for k, v in saved[1].items()}
            plain = cls(groups(plain_params, two), **kw)
            plain.load_state_dict(consolidated)
            for t in range(half, STEPS):
                plain.step(mean_grads(SHAPES, t, SIZE, nan))
            same(ref, plain_params, f"{name}: saved at {saver_size} ranks, resumed in one process")


def check_low_precision():
    """bfloat16 and float16 parameters: the gradients averaged in float32 in rank order and
    rounded once to their dtype, then the plain optimizer's step (bfloat16 state, whose
    stochastic rounding is the same on every rank, under DataParallel only; master weights and
    the sharded norm under both); both averages of DataParallel."""
    import ml_dtypes

    configs = [
        (fo.SGD, dict(lr=0.05, momentum=0.9), (DataParallel, ShardedOptimizer)),
        (fo.Adam, dict(lr=1e-2, state_dtype="bfloat16"), (DataParallel,)),
        (fo.AdamW, dict(lr=1e-2, master_weights=True, max_grad_norm=5.0), (DataParallel, ShardedOptimizer)),
    ]
    for dt in (ml_dtypes.bfloat16, np.float16):
        for cls, kw, wrappers in configs:
            ref = {k: v.astype(dt) for k, v in init(SHAPES).items()}
            ref_opt = cls(ref, **kw)
            runs = []
            for wrapper in wrappers:
                params = {k: v.astype(dt) for k, v in init(SHAPES).items()}
                runs.append((wrapper, params, wrapper(cls(params, **kw), WORLD)))
            for t in range(8):
                local = [{k: v.astype(dt) for k, v in local_grads(SHAPES, t, r, False).items()} for r in range(SIZE)]
                mean = {}
                for k in SHAPES:
                    acc = local[0][k].astype(np.float32)
                    for r in range(1, SIZE):
                        acc = acc + local[r][k].astype(np.float32)
                    mean[k] = (acc / np.float32(SIZE)).astype(dt)
                ref_opt.step(mean)
                for wrapper, _, w in runs:
                    w.step(local[RANK])
                    assert repr(w.last_grad_norm) == repr(ref_opt.last_grad_norm), f"{wrapper.__name__} norm"
            for wrapper, params, w in runs:
                what = f"{dt.__name__} {cls.__name__} {wrapper.__name__}"
                same(ref, params, what)
                if wrapper is ShardedOptimizer:
                    full = w.consolidated_state_dict()
                    if RANK == 0:
                        same_state(ref_opt.state_dict(), full, f"{what} state")
            # MPI_Allreduce over float32 sums: at 2 ranks the ordered bits
            params = {k: v.astype(dt) for k, v in init(SHAPES).items()}
            w = DataParallel(cls(params, **kw), WORLD, average="allreduce")
            for t in range(8):
                w.step({k: v.astype(dt) for k, v in local_grads(SHAPES, t, RANK, False).items()})
            everyone = WORLD.allgather(params)
            for other in everyone:
                same(everyone[0], other, f"{dt.__name__} allreduce ranks agree")
            if SIZE == 2:
                same(ref, params, f"{dt.__name__} {cls.__name__} allreduce at 2 ranks")


def main():
    check_low_precision()
    figures = check_steps()
    check_schedulers()
    check_checkpoints()
    everyone = WORLD.gather(figures, root=0)
    if RANK == 0:
        print(f"OK {SIZE} ranks; optimizer state bytes per rank / single process:", flush=True)
        for r, f in enumerate(everyone):
            print(f"  rank {r}: {' '.join(f)}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        WORLD.Abort(1)
