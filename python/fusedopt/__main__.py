"""``python -m fusedopt bench | demo | info``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    usage = "usage: python -m fusedopt {bench,demo,info} [options]   (bench --help for its options)"
    if not args or args[0] in ("-h", "--help"):
        print(usage)
        return 0
    command, rest = args[0], args[1:]
    if command == "bench":
        from .bench.cli import main as bench_main

        return bench_main(rest)
    if command == "demo":
        from .demo.cli import main as demo_main

        return demo_main(rest)
    if command == "info":
        from .runtime import show_runtime

        show_runtime()
        return 0
    print(f"unknown command {command!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
