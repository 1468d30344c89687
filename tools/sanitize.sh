#!/usr/bin/env bash
# The test suite against fusedopt._core built with AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Builds the module from this checkout (RelWithDebInfo plus the project's own -O3 flags, with
# -fsanitize=address,undefined -fno-omit-frame-pointer; UB is not recoverable, so the first
# report aborts), puts it beside a copy of python/fusedopt in a temporary directory that comes
# first on sys.path, and runs pytest there with libasan and libstdc++ preloaded together (the
# interpreter itself is not instrumented). Any ASan or UBSan report fails the run.
#
#   tools/sanitize.sh [pytest arguments]     default: the whole suite (tests/), torch included
#
# On the 2-core CI machine: about 4 minutes to build, 2.5 to test. Environment: PYTHON (default
# python), SANITIZE_DIR (build and package directory; default a fresh temporary one).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
WORK=${SANITIZE_DIR:-$(mktemp -d -t fusedopt-sanitize.XXXXXX)}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

# The build tools (pip's build isolation may have kept them out of this environment).
"$PYTHON" -c "import pybind11" 2>/dev/null || "$PYTHON" -m pip install --quiet "pybind11>=2.12"
command -v cmake >/dev/null || "$PYTHON" -m pip install --quiet cmake
command -v ninja >/dev/null || "$PYTHON" -m pip install --quiet ninja

cmake -S . -B "$WORK/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_MODULE_LINKER_FLAGS="$SAN" -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -DPython_EXECUTABLE="$(command -v "$PYTHON")" -Dpybind11_DIR="$("$PYTHON" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$WORK/build" -j "$(nproc)"

rm -rf "$WORK/pkg" && mkdir -p "$WORK/pkg"
cp -r python/fusedopt "$WORK/pkg/fusedopt"
rm -f "$WORK"/pkg/fusedopt/_core*.so
cp "$WORK"/build/_core*.so "$WORK/pkg/fusedopt/"

if [ $# -eq 0 ]; then
  set -- tests -p no:cacheprovider -q -x
fi

export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export FUSEDOPT_SANITIZED_PACKAGE="$WORK/pkg"
# An editable install's import finder sits before sys.path and would shadow the copy: drop it,
# then insist that the sanitized module is the one imported.
exec "$PYTHON" - "$@" <<'EOF'
import os, sys
pkg = os.environ["FUSEDOPT_SANITIZED_PACKAGE"]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, pkg)
import fusedopt._core
assert fusedopt._core.__file__.startswith(pkg), f"imported {fusedopt._core.__file__}, not the sanitized build"
print(f"sanitized fusedopt._core: {fusedopt._core.__file__}", flush=True)
import pytest
sys.exit(pytest.main(sys.argv[1:]))
EOF
