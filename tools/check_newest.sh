#!/usr/bin/env bash
# Build and test fusedopt with the newest CPython and GCC Debian has (sid), in a chroot made by
# debootstrap: wheels for a new Python are built and tested by cibuildwheel with whatever
# compiler and pybind11 are newest, and a new compiler takes its own freedoms (tools/check_clang.sh).
# The suite runs without torch (PyPI's Linux torch is a multi-GB CUDA build; the CPU build CI
# installs is for the CI Python), so its live torch comparisons skip; the stored torch results
# (tests/data, tests/parity) still run.
# Linux, root, Debian's archive reachable. Not in CI (debootstrap takes minutes); run it when a
# new Python or compiler is out.
# Usage: tools/check_newest.sh [pytest args]   (PYTHON_VERSION: default 3.14; FUSEDOPT_SID_ROOT:
# the chroot, default /tmp/fusedopt-sid, kept between runs)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
py="python${PYTHON_VERSION:-3.14}"
root="${FUSEDOPT_SID_ROOT:-/tmp/fusedopt-sid}"
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
if [ ! -x "$root/usr/bin/$py" ]; then
    debootstrap --variant=minbase --include="$py,$py-dev,$py-venv,g++,cmake,ninja-build,ca-certificates" \
        sid "$root" http://deb.debian.org/debian >/dev/null
fi
# This machine's certificates (a TLS proxy's included) and name servers, for pip in the chroot.
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
for d in proc dev; do mountpoint -q "$root/$d" || mount --bind "/$d" "$root/$d"; done
trap 'umount "$root/proc" "$root/dev" 2>/dev/null || true' EXIT
# The working tree as it is (tracked and untracked files git does not ignore).
rm -rf "$root/src" && mkdir -p "$root/src"
git -C "$repo" ls-files -z --cached --others --exclude-standard | tar -C "$repo" --null -T - -cf - | tar -C "$root/src" -xf -
# In the chroot: a venv, fusedopt and its test extras but the torch-based references
# (pytorch-optimizer, schedulefree), then the suite.
cat > "$root/src/.check_newest_inner.sh" <<'INNER'
set -euo pipefail
py="$1"; shift
[ -x /venv/bin/python ] || "$py" -m venv /venv
cd /src
/venv/bin/pip install --quiet --upgrade pip
/venv/bin/python - > /tmp/test-requirements.txt <<'PY'
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]
print("\n".join(e for e in extras if not e.startswith(("pytorch-optimizer", "schedulefree"))))
PY
/venv/bin/pip install --quiet . -r /tmp/test-requirements.txt
/venv/bin/python -c 'import sys, fusedopt; print("Python", sys.version.split()[0], "|", fusedopt.runtime_info()["compiler"])'
/venv/bin/python -m pytest -q -p no:cacheprovider "$@"
INNER
chroot "$root" env -i PATH=/usr/bin:/bin HOME=/root bash /src/.check_newest_inner.sh "$py" "$@"
