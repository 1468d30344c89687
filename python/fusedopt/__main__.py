"""``python -m fusedopt {bench,demo,info}`` (also the ``fusedopt`` command)."""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "bench": "time every optimizer against NumPy, torch and the memory limit (bench --help)",
    "demo": "run the optimizers on test functions and a regression; write plots (demo --help)",
    "info": "show the SIMD target, threads, build flags and versions",
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fusedopt",
                                 description="fusedopt: fused SIMD optimizer steps for NumPy arrays.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{bench,demo,info}")
    for name, text in COMMANDS.items():
        # bench and demo parse their own options (and their own --help).
        sub.add_parser(name, help=text, description=text, add_help=name == "info")
    return ap


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "bench":
        from .bench.cli import main as bench_main

        return bench_main(rest)
    if args.command == "demo":
        from .demo.cli import main as demo_main

        return demo_main(rest)
    if rest:
        build_parser().error(f"info takes no arguments, got {' '.join(rest)}")
    from .runtime import show_runtime

    show_runtime()
    return 0


if __name__ == "__main__":
    sys.exit(main())
