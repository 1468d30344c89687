#!/usr/bin/env bash
# Types: the package is clean under mypy --strict, and the hand-written stubs of the native module
# (python/fusedopt/_core.pyi) agree with the module itself (mypy's stubtest: every function,
# argument name and kind). Run from anywhere; needs mypy and an installed fusedopt.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
python -m mypy --strict --no-incremental -p fusedopt
cd "$(mktemp -d)"  # stubtest must import the installed module, not the source tree
python -m mypy.stubtest fusedopt._core --allowlist "$repo/tools/stubtest_allowlist.txt"
