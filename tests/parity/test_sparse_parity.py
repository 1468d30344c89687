"""Row-sparse gradients against torch 2.13 (sparse_cases.py): golden trajectories on every SIMD
target and the NumPy backend, and the same cases live when torch is importable. Every parameter
and state entry after each of the 25 steps, at the parity suite's tolerances (conftest.py)."""

from __future__ import annotations

import functools
import json

import fusedopt
import numpy as np
import pytest

from . import sparse_cases as sc
from .conftest import TOLERANCES, record_error
from .cases import close, rel_err

CASE_PARAMS = [pytest.param(c, id=c.id) for c in sc.CASES]


@functools.cache
def _golden() -> dict[str, np.ndarray]:
    if not sc.GOLDEN_PATH.exists():
        pytest.fail(f"{sc.GOLDEN_PATH} is missing: run `python tools/make_parity_golden.py`")
    with np.load(sc.GOLDEN_PATH) as data:
        meta = json.loads(str(data["__meta__"]))
        for dtype, crc in meta["crc"].items():
            assert crc == sc.inputs_crc(dtype), "the sparse gradient stream changed: run tools/make_parity_golden.py"
        return {case.id: sc.unpack_golden(data, case) for case in sc.CASES}


def compare(got: list[sc.Snapshot], ref: dict[int, sc.Snapshot], case: sc.SparseCase, suite: str) -> None:
    """`ref`: torch's snapshots by step index (every step live, GOLDEN_STEPS from the file)."""
    rtol, atol = TOLERANCES[case.dtype]
    worst = (0.0, "")
    assert len(got) == sc.N_STEPS and ref
    for t, f in sorted(ref.items()):
        g = got[t]
        assert set(g) == set(f), f"{case.id} step {t + 1}: entries {sorted(g)} vs torch {sorted(f)}"
        for name, fv in f.items():
            gv = g[name]
            if name.endswith(".step"):
                assert float(gv) == float(fv), f"{case.id} step {t + 1}: {name} = {gv}, torch {fv}"
                continue
            assert gv.dtype == np.dtype(case.dtype) and gv.shape == fv.shape, f"{case.id}: {name}"
            e = rel_err(gv, fv, rtol, atol)
            worst = max(worst, (e, f"{case.id} step {t + 1} {name}"))
            assert close(gv, fv, rtol, atol), f"{case.id} step {t + 1}: {name} differs from torch (rel err {e:.3g})"
    record_error(suite, case.dtype, *worst)


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_golden(case: sc.SparseCase, impl) -> None:
    compare(sc.run_fusedopt(fusedopt, case, impl.backend), _golden()[case.id], case, "sparse golden")


def test_golden_covers_the_matrix() -> None:
    golden = _golden()
    assert set(golden) == {c.id for c in sc.CASES}
    assert all(sorted(golden[c.id]) == [t - 1 for t in sc.GOLDEN_STEPS] for c in sc.CASES)


@pytest.mark.torch
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_live(case: sc.SparseCase) -> None:
    pytest.importorskip("torch")
    compare(sc.run_fusedopt(fusedopt, case), dict(enumerate(sc.run_torch(case))), case, "sparse live")


@pytest.mark.torch
def test_coalesce_sums_like_torch() -> None:
    """torch's coalesce adds a row's copies in the order of its (unstable) index sort; fusedopt
    adds them in the order given. Rows given at most twice: identical bits (a + b == b + a); more
    copies: the same sum up to rounding."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for copies, exact in ((2, True), (5, False)):
        idx = rng.permutation(np.repeat(np.arange(200), copies))
        rows = rng.standard_normal((idx.size, 9)).astype(np.float32)
        t = torch.sparse_coo_tensor(torch.from_numpy(idx)[None], torch.from_numpy(rows), (200, 9),
                                    check_invariants=True).coalesce()
        got_rows, got = fusedopt.reference.coalesce(fusedopt.RowSparse(idx, rows))
        order = np.argsort(got_rows)
        want = t._values().numpy()
        assert np.array_equal(got_rows[order], t._indices()[0].numpy())
        if exact:
            assert np.array_equal(got[order], want)
        else:
            np.testing.assert_allclose(got[order], want, rtol=1e-5, atol=1e-6)
