"""bench/mpi_steps.py runs under mpiexec and reports every mode per rank (a 64K smoke run; the
figures are in docs/distributed.md). Its byte counts are the collectives' payloads."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fusedopt
import pytest

SCRIPT = Path(__file__).with_name("mpi_steps.py")


def test_mpi_bench_quick():
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install fusedopt[mpi])")
    prefixes = (Path(sys.executable).parent, Path(sys.prefix) / "bin", Path(sys.base_prefix) / "bin")
    mpiexec = next((str(p / "mpiexec") for p in prefixes if (p / "mpiexec").exists()), shutil.which("mpiexec"))
    if mpiexec is None:
        pytest.skip("no mpiexec found (pip install mpich)")
    here = str(Path(fusedopt.__file__).resolve().parents[1])  # the ranks import this fusedopt
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH")))))
    run = subprocess.run([mpiexec, "-n", "2", sys.executable, str(SCRIPT), "--quick"], capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith("0.06M")]
    assert {(r[1], r[2]) for r in rows} == {(m, k) for m in ("dp-ordered", "dp-allreduce", "zero1") for k in "01"}
    n = 64 * 2**10 * 4  # bytes of the parameters
    for r in rows:
        sent, state = float(r[6]) * 1e6, float(r[7]) * 1e6
        if r[1] == "zero1":  # half the gradients out, half the parameters out (+ the norm partials)
            assert abs(sent - n) < 0.01 * n and abs(state - n) < 0.01 * n  # AdamW: 2 x 4 B per element / 2 ranks
        else:
            assert sent == pytest.approx(n, rel=1e-3) and abs(state - 2 * n) < 0.01 * n
