#!/usr/bin/env bash
# Cross-build fusedopt for aarch64 (Linux arm64 wheels build there: pyproject's cibuildwheel
# archs) and run tests under qemu-aarch64, from an x86-64 Debian 12 machine as root. The module
# is built by this repository's CMakeLists.txt (its aarch64 branch: one "baseline" target) with
# g++-12-aarch64-linux-gnu; Python 3.11 for arm64 comes from Debian's packages, unpacked (not
# installed: they would displace the host's python3), NumPy and the test tools from PyPI's
# aarch64 wheels. qemu emulates the FPU exactly, so bitwise tests mean what they say; it is
# 10-30x slower than native, so the default is the numeric core of the suite (a few minutes).
# The interpreter is a script that starts qemu and names itself as argv[0], so sys.executable
# is that script and the tests' subprocesses of it run too (no binfmt_misc needed). The emulated
# CPU is a Neoverse N1 (Graviton2; FUSEDOPT_ARM_CPU to change): on qemu's default "max" CPU,
# NumPy's OpenBLAS computes x @ x.T wrongly from 16 x 16 on (0.09 off for entries near 1/16;
# its general products are right), which failed Muon's tests there.
#   Usage: tools/check_aarch64.sh [pytest arguments]   (default: the files in DEFAULT_TESTS)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${FUSEDOPT_ARM_WORK:-/tmp/fusedopt-aarch64}"
host_python="${PYTHON:-python3}"
DEFAULT_TESTS=(test_core_parity.py test_differential.py test_low_precision.py test_compressed_state.py
               test_layouts.py test_core_engine.py test_reductions.py test_adafactor.py test_sparse.py
               test_norm_extremes.py test_core_denormals.py)

if ! command -v aarch64-linux-gnu-g++-12 >/dev/null || ! command -v qemu-aarch64-static >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq g++-12-aarch64-linux-gnu gcc-12-aarch64-linux-gnu qemu-user-static >/dev/null
fi
dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64; apt-get update -qq; }

root="$work/root" site="$work/site"
if [ ! -x "$root/usr/bin/python3.11" ]; then
    mkdir -p "$work/debs" "$root"
    (cd "$work/debs" && for p in python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11 \
        libpython3.11-dev libc6 libexpat1 zlib1g libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0 libgomp1 \
        libstdc++6 libgcc-s1 libncursesw6 libtinfo6 libreadline8 libuuid1 libdb5.3 libgdbm6 libnsl2 \
        libtirpc3 libcrypt1; do apt-get download -qq "$p:arm64"; done)
    for d in "$work"/debs/*.deb; do dpkg -x "$d" "$root"; done
fi
if [ ! -d "$site/numpy" ]; then
    "$host_python" -m pip download -q --only-binary=:all: --platform manylinux_2_17_aarch64 \
        --platform manylinux2014_aarch64 --platform any --python-version 3.11 --implementation cp \
        --abi cp311 -d "$work/wheels" numpy pytest hypothesis ml_dtypes threadpoolctl
    for w in "$work"/wheels/*.whl; do "$host_python" -m zipfile -e "$w" "$site"; done
fi

cat > "$work/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc-12)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++-12)
set(CMAKE_FIND_ROOT_PATH $root)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_CXX_FLAGS_INIT "-isystem $root/usr/include")
EOF
suffix=cpython-311-aarch64-linux-gnu
cmake -S "$repo" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$work/toolchain.cmake" \
    -Dpybind11_DIR="$("$host_python" -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
    -DPython_EXECUTABLE="$(command -v "$host_python")" -DPython_INCLUDE_DIR="$root/usr/include/python3.11" \
    -DPython_SOABI=$suffix -DPYTHON_MODULE_EXTENSION=.$suffix.so >/dev/null
cmake --build "$work/build"

rm -rf "$work/pkg" && mkdir -p "$work/pkg"
cp -r "$repo/python/fusedopt" "$work/pkg/"
find "$work/pkg" \( -name '*.so' -o -name __pycache__ \) -prune -exec rm -rf {} +
cp "$work/build/_core.$suffix.so" "$work/pkg/fusedopt/"
python="$root/usr/bin/python3-qemu"
printf '#!/bin/sh\nexec qemu-aarch64-static -cpu %s -0 %s -L %s %s "$@"\n' "${FUSEDOPT_ARM_CPU:-neoverse-n1}" \
    "$python" "$root" "$root/usr/bin/python3.11" > "$python"
chmod +x "$python"
[ $# -gt 0 ] || set -- "${DEFAULT_TESTS[@]}"
cd "$repo/tests"
PYTHONPATH="$work/pkg:$site" "$python" -m pytest -q -p no:cacheprovider "$@"
