"""Run the benchmark from a source checkout: ``python bench/run.py --quick`` (same as
``python -m fusedopt bench --quick``; the implementation is ``fusedopt.bench.cli``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from fusedopt.bench.cli import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
