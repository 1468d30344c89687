"""``python -m fusedopt``: subcommands with their own --help, and the module entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fusedopt.__main__ import COMMANDS, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_its_own_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"python -m fusedopt {command}" in capsys.readouterr().out


def test_info_prints_the_runtime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "active_target" in out and "flush_denormal" in out
    assert not any(line.rstrip().endswith("|") for line in out.splitlines()), "a trailing separator"


@pytest.mark.parametrize("argv", [["nope"], [], ["info", "--extra"]])
def test_bad_commands_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage: python -m fusedopt" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["fusedopt", "fusedopt.demo", "fusedopt.bench"])
def test_module_entry_points_answer_help(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize("argv, match", [
    (["--threads", "0"], "argument --threads: must be > 0, got 0"),
    (["--repeats", "-2"], "argument --repeats: must be > 0, got -2"),
    (["--min-time", "0"], "argument --min-time: must be > 0, got 0"),
    (["--tries", "0"], "argument --tries: must be > 0, got 0"),
    (["--threads", "two"], "argument --threads: invalid"),
])
def test_bench_refuses_bad_numbers_by_name(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    from fusedopt.bench.cli import main as bench_main

    with pytest.raises(SystemExit) as exc:
        bench_main(argv)
    assert exc.value.code == 2
    assert match in capsys.readouterr().err


def test_bench_refuses_an_output_it_could_not_write_before_running(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A bench run takes minutes: a file it could not write is an error at once, not a
    traceback at the end (no measurement runs: a whole --quick run would print its tables)."""
    from fusedopt.bench.cli import main as bench_main

    quick = ["--quick", "--layouts", "1", "--optimizers", "SGD", "--no-torch", "--no-progress"]
    for flag in ("--json", "--markdown", "--plot"):
        for path, why in ((tmp_path / "no" / "out", "no directory"), (tmp_path, "is a directory")):
            assert bench_main([*quick, flag, str(path)]) == 2
            out = capsys.readouterr()
            assert out.err.startswith(f"error: {flag}: ") and why in out.err and out.out == ""


def test_bench_from_a_missing_or_bad_json_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fusedopt.bench.cli import main as bench_main

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for path in (tmp_path / "missing.json", bad):
        assert bench_main(["--from-json", str(path)]) == 2
        assert capsys.readouterr().err.startswith("error: --from-json: ")
