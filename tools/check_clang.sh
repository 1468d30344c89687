#!/usr/bin/env bash
# Build the module with clang instead of GCC (macOS wheels are built with Apple's clang and
# Homebrew's libomp) in a fresh venv and run the suite against it. A compiler's own freedoms show
# here: clang rewrote pow(x, 0.5) as sqrt(x), which moved Adam's bias correction off Python's
# (and torch's) in the last bit. Linux with apt (root): clang and its libomp are installed when
# missing. Not in CI (it needs apt); run it after changing the C++.
# Usage: tools/check_clang.sh [pytest args]   (CLANG_VERSION: default 19; FUSEDOPT_CLANG_WORK:
# the venv and build directory, default a temporary one)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
v="${CLANG_VERSION:-19}"
if ! command -v "clang++-$v" >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq "clang-$v" "libomp-$v-dev" >/dev/null
fi
work="${FUSEDOPT_CLANG_WORK:-$(mktemp -d)}"
[ -x "$work/venv/bin/python" ] || python -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet "torch==2.13.0"
CC="clang-$v" CXX="clang++-$v" "$work/venv/bin/pip" install --quiet "$repo[test]" -Cbuild-dir="$work/build"
"$work/venv/bin/python" -c "import fusedopt; c = fusedopt.runtime_info()['compiler']; assert c.startswith('Clang'), c; print(c)"
cd "$repo"  # (the source tree has no importable fusedopt: python/ is not on the path)
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
