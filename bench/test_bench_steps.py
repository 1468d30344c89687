"""pytest-benchmark timings of the native step that also check what they timed: after the
timed steps, the parameters equal those of the NumPy reference run for as many steps.

    python -m pytest bench -q -p no:cacheprovider --benchmark-disable   # checks only (CI speed)
    python -m pytest bench -q -p no:cacheprovider --benchmark-only      # timings
"""

from __future__ import annotations

import fusedopt
import numpy as np
import pytest
from fusedopt import _core
from fusedopt.bench.cases import CASES, Case, Layout
from fusedopt.bench.cli import make_data, native_opt
from fusedopt.bench.timing import Contender, measure

LAYOUTS = (
    Layout("64K", (64 * 1024,)),
    Layout("50 arrays", tuple(1000 + 37 * i for i in range(50))),
    Layout("64K f64", (64 * 1024,), np.float64),
)

# The native kernels may use FMAs where the reference rounds twice (avx2/avx512 targets), so
# the two agree to rounding, not bit for bit; Lion's sign() can flip where its argument is
# within rounding of zero (a 2*lr step), hence an absolute tolerance of a few lr.
TOL = {"float32": (2e-5, 2e-6), "float64": (1e-12, 1e-13)}


def _tolerance(case: Case, dtype: str) -> tuple[float, float]:
    rtol, atol = TOL[dtype]
    if case.key == "Lion":
        atol = max(atol, 4 * case.kwargs["lr"])
    return rtol, atol


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.key)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_native_step(benchmark, case: Case, layout: Layout) -> None:
    p0, grads = make_data(layout)
    params = [a.copy() for a in p0]
    opt = native_opt(case, params)
    count = 0

    def step() -> None:
        nonlocal count
        opt.step(grads)
        count += 1

    benchmark.extra_info.update(params=layout.total, pattern=case.pattern,
                                bytes_per_param=case.bytes_per_param(layout.itemsize))
    benchmark.pedantic(step, rounds=30, iterations=1, warmup_rounds=case.warmup_steps)
    assert count >= 1

    ref_params = [a.copy() for a in p0]
    ref = native_opt(case, ref_params, backend="numpy")
    for _ in range(count):
        ref.step(grads)
    rtol, atol = _tolerance(case, layout.dtype_name)
    for a, b in zip(params, ref_params):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    assert opt.step_count == ref.step_count == count


@pytest.mark.parametrize("pattern", [1, 2, 3, 4])
def test_probe(benchmark, pattern: int) -> None:
    """The probe does a[i] += g[i] on every written list, once per call."""
    n = 64 * 1024
    g = np.full(n, 0.5, np.float32)
    written = [[np.zeros(n, np.float32)] for _ in range(pattern)]
    count = 0

    def run() -> None:
        nonlocal count
        _core.probe(written, [g])
        count += 1

    benchmark.pedantic(run, rounds=20, iterations=1)
    for lst in written:
        np.testing.assert_array_equal(lst[0], np.float32(0.5 * count))


def test_prepared_probe_runs_each_call_and_refuses_a_moved_array() -> None:
    """Probe(written, grads) checks its arrays once; each call adds again, over many arrays, and
    an array reallocated since is refused before anything is written."""
    g = [np.full(n, 0.25, np.float32) for n in (1000, 33, 4096)]
    written = [[np.zeros(a.size, np.float32) for a in g] for _ in range(2)]
    probe = _core.Probe(written, g)
    for _ in range(3):
        probe()
    for lst in written:
        for a in lst:
            np.testing.assert_array_equal(a, np.float32(0.75))
    moved, before, size = written[1][2], written[1][2].ctypes.data, 1 << 16
    while moved.ctypes.data == before:  # (realloc may grow a block in place: grow until it moves)
        moved.resize(size, refcheck=False)
        size *= 4
    with pytest.raises(ValueError, match="reallocated or changed"):
        probe()
    np.testing.assert_array_equal(written[0][0], np.float32(0.75))


@pytest.mark.parametrize("shape", [(4096,), (2, 2, 2, 2, 256)], ids=["stamped", "5-D: checked in full"])
def test_prepared_probe_refuses_an_array_shrunk_in_place(shape: tuple[int, ...]) -> None:
    """An array made smaller (realloc usually keeps the address) is refused, not written past
    its new end."""
    g = [np.full(shape, 0.25, np.float32)]
    written = [[np.zeros(shape, np.float32)]]
    probe = _core.Probe(written, g)
    probe()
    written[0][0].resize((16,), refcheck=False)
    with pytest.raises(ValueError, match="reallocated or changed"):
        probe()
    np.testing.assert_array_equal(written[0][0], np.float32(0.25))


def test_native_much_faster_than_numpy_reference() -> None:
    """A loose version of issue 8's '>= 15x the NumPy reference' (noise-proof: one thread, the
    best sample of each, 5x)."""
    case = next(c for c in CASES if c.key == "Adam")
    p0, grads = make_data(Layout("256K", (256 * 1024,)))
    native = native_opt(case, [a.copy() for a in p0])
    ref = native_opt(case, [a.copy() for a in p0], backend="numpy")
    saved = fusedopt.get_num_threads()
    fusedopt.set_num_threads(1)
    try:
        st = measure([Contender("native", lambda: native.step(grads)), Contender("numpy", lambda: ref.step(grads))],
                     repeats=5, min_time=0.005)
    finally:
        fusedopt.set_num_threads(saved)
    assert st["numpy"].min / st["native"].min > 5.0


def test_report_and_targets_from_a_tiny_run(tmp_path, capsys) -> None:
    """The CLI end to end on one case and layout: table (100 columns at most, every column in
    the legend, no internal names), JSON, Markdown."""
    import json

    from fusedopt.bench.cli import main

    out = tmp_path / "b.json"
    md = tmp_path / "b.md"
    rc = main(["--quick", "--optimizers", "Adam,SGD", "--layouts", "4K,256K", "--no-torch", "--repeats", "3",
               "--min-time", "0.0005", "--no-progress", "--json", str(out), "--markdown", str(md)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert max(len(line) for line in printed.splitlines()) <= 100
    for header in ("ns/p", "limit", "threads", "NumPy", "busy"):
        assert f"  {header} " in printed, header  # its legend line
    assert "memory probe" in printed and "issue" not in printed and "torch" not in printed.split("\n\n")[1]
    doc = json.loads(out.read_text())
    assert {(r["case"], r["layout"]) for r in doc["rows"]} == {(c, lay) for c in ("Adam", "SGD") for lay in ("4K", "256K")}
    for r in doc["rows"]:
        assert r["native_ns"] > 0 and r["probe_ns"] > 0 and r["numpy_ns"] > 0
        assert r["bytes_per_param"] == {"Adam": 28, "SGD": 12}[r["case"]]
    assert any(t["target"].startswith("256K/1M") for t in doc["targets"])
    assert "| layout |" in md.read_text()
    md2 = tmp_path / "again.md"
    assert main(["--from-json", str(out), "--markdown", str(md2)]) == 0
    assert md2.read_text() == md.read_text()


def test_many_arrays_rows_give_the_cost_of_each_extra_array() -> None:
    """The many-vs-one comparison reports the issue's two yardsticks: the time ratio and the
    nanoseconds each array beyond the first adds."""
    from fusedopt.bench import report

    row = {"case": "SGD", "layout": "1000x1000", "params": 10**6, "arrays": 1000, "bytes_per_param": 12,
           "times": {"native": 120e-6, "native_one_array": 100e-6}, "stats": {}}
    d = report.derive(row)
    assert d["vs_one_array"] == pytest.approx(1.2)
    assert d["per_extra_array_ns"] == pytest.approx(20e-6 / 999 * 1e9)
    assert "  SGD          1000x1000 1.2x (20)" in report._extras_text({"rows": [d]})
    one = report.derive({**row, "layout": "1M", "arrays": 1, "times": {"native": 100e-6}})
    assert np.isnan(one["per_extra_array_ns"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.key)
def test_case_pattern_matches_the_optimizer_state(case: Case) -> None:
    """The probe pattern of a case = the parameter + the state arrays its optimizer keeps."""
    p0, grads = make_data(Layout("small", (64,)))
    opt = native_opt(case, [a.copy() for a in p0])
    opt.step(grads)
    states = list(opt.state.values())  # torch keeps no state for plain SGD
    arrays = sum(isinstance(v, np.ndarray) for v in states[0].values()) if states else 0
    assert case.pattern == 1 + arrays


def test_loaded_run_and_denormals_from_a_tiny_run(tmp_path, capsys) -> None:
    """--loaded (a busy process beside the table) and --denormals end to end: the loaded target
    replaces the no-slowdown one, the denormal rows cover every supported target, and the busy
    process is gone afterwards."""
    import json

    from fusedopt.bench import denormals
    from fusedopt.bench.cli import main

    out = tmp_path / "b.json"
    saved_n = denormals.N
    denormals.N = 1 << 14  # small: this checks the plumbing, not the speed
    try:
        rc = main(["--quick", "--optimizers", "SGD+mom", "--layouts", "64K", "--no-torch", "--no-numpy",
                   "--repeats", "3", "--min-time", "0.0005", "--no-progress", "--loaded", "--denormals",
                   "--json", str(out)])
    finally:
        denormals.N = saved_n
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["loaded"] is True
    names = {t["target"] for t in doc["targets"]}
    assert "loaded: default threads <= 1.15 x 1 thread" in names
    assert not any(n.startswith("threads: no slowdown") for n in names)
    assert {r["target"] for r in doc["denormals"]["rows"]} == set(fusedopt.runtime_info()["supported_targets"])
    assert all(r["flushed"] > 0 and r["kept"] > 0 for r in doc["denormals"]["rows"])
    assert fusedopt.get_flush_denormal() is True
    assert "denormals:" in capsys.readouterr().out


def test_beside_blas_from_a_tiny_run(tmp_path, capsys) -> None:
    """--beside-blas end to end: both thread counts timed, the matmul target reported where there
    are threads to compare, the thread count restored afterwards."""
    import json

    from fusedopt.bench import beside_blas
    from fusedopt.bench.cli import main

    out = tmp_path / "b.json"
    saved_n, threads = beside_blas.N, fusedopt.get_num_threads()
    beside_blas.N = 1 << 12  # small: this checks the plumbing, not the speed
    try:
        rc = main(["--quick", "--optimizers", "SGD", "--layouts", "1", "--no-torch", "--no-numpy",
                   "--repeats", "3", "--min-time", "0.0005", "--no-progress", "--beside-blas", "--json", str(out)])
    finally:
        beside_blas.N = saved_n
    assert rc == 0
    doc = json.loads(out.read_text())["beside_blas"]
    assert doc["params"] == 1 << 12 and set(doc["seconds"]) == {"1", str(threads)}
    assert all(v["matmul"] > 0 and v["step"] > 0 for v in doc["seconds"].values())
    assert fusedopt.get_num_threads() == threads
    assert "beside BLAS:" in capsys.readouterr().out
    names = {t["target"] for t in json.loads(out.read_text())["targets"]}
    assert any(n.startswith("beside BLAS:") for n in names) == (threads > 1)


def test_a_disturbed_run_says_so() -> None:
    from fusedopt.bench import report

    row = {"case": "Adam", "layout": "1M", "params": 1 << 20, "arrays": 1, "dtype": "float32", "pattern": 3,
           "bytes_per_param": 28, "times": {"native": 3e-4, "native_1t": 3e-4},
           "stats": {"native": {"others_cores": 0.9}}}
    meta = {"fusedopt": "x", "target": "avx2", "threads": 2, "min_parallel_elements": 65536, "numpy": "x",
            "torch": None, "machine": "m", "cpus": 2, "mode": "quick", "date": "d", "seconds": 1.0,
            "config": {"repeats": 1, "repeats_torch": 1, "repeats_numpy": 1, "min_time": 0.001}}
    text = report.text(report.build(meta, [row], {}))
    assert "other processes kept the CPUs busy during 1 of 1 rows" in text and "--loaded" in text
    quiet = dict(row, stats={"native": {"others_cores": 0.0}})
    assert "kept the CPUs busy" not in report.text(report.build(meta, [quiet], {}))


def test_overheads_within_noise_are_not_negative() -> None:
    from fusedopt.bench.report import _overhead

    assert _overhead(-3.0, 5.0) == "<2"
    assert _overhead(-3.0, 1.0) == "~0"
    assert _overhead(10.0, 2.0) == "10+-2"
    assert _overhead(-1.0, float("nan")) == "~0"
