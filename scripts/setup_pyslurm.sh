#!/usr/bin/env bash
# pyslurm for this machine's Slurm, into .venv (pyproject's `pyslurm` extra; runner = "pyslurm").
# PyPI has pyslurm only for Slurm 25.11, so it comes from here: Debian's libslurm-dev, then the
# prebuilt wheel in the shared directory's wheels/ (see shared_dir below) when it fits this machine (pip checks
# the CPython tag and platform; the import then proves libslurm's soname and ABI, and its API version
# must be the installed Slurm's major), else a build from the vendored source (~4 min on 2 cores; build
# isolation pulls the old setuptools and Cython < 3 it pins). Idempotent: quick when pyslurm already fits.
# Another Slurm version: set BRIDGE_PYSLURM_SOURCE to pyslurm's source for it (upstream tag vXX.Y.Z,
# XX.Y = Slurm's major, e.g. v23.2.2 for 23.02) and BRIDGE_PYSLURM_WHEEL to a wheel of it, or nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# The shared directory: $BRIDGE_SHARED_DIR, else ../shared beside this checkout, else beside the checkout
# this one was cloned from (a `git clone . /tmp/x` has no ../shared of its own), else /work/shared.
shared_dir() {
    local origin
    origin=$(git config --get remote.origin.url 2>/dev/null || true)
    for dir in "${BRIDGE_SHARED_DIR:-}" ../shared "${origin:+$origin/../shared}" /work/shared; do
        if [ -n "$dir" ] && { [ -d "$dir/wheels" ] || [ -d "$dir/vendor" ]; }; then
            echo "$dir"
            return
        fi
    done
    echo ../shared
}
shared=$(shared_dir)
wheel=${BRIDGE_PYSLURM_WHEEL:-$shared/wheels/pyslurm-22.5.3-cp311-cp311-linux_x86_64.whl}
source=${BRIDGE_PYSLURM_SOURCE:-$shared/vendor/pyslurm-22.5.3.tar.gz}
python=${BRIDGE_VENV_PYTHON:-.venv/bin/python}

# libslurm-dev to build against; slurm-wlm-basic-plugins because libslurm, when pyslurm loads, exits the
# process if its PluginDir (/usr/lib/<arch>/slurm-wlm, from that package) is missing: on a fresh machine,
# before `cluster up` installs the Slurm packages, no pyslurm would "fit" and a good wheel was refused.
packages="libslurm-dev slurm-wlm-basic-plugins"
# shellcheck disable=SC2086
if ! dpkg -s $packages >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup_pyslurm: $packages missing; run as root or: sudo apt-get install -y $packages" >&2
        exit 1
    fi
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
fi
slurm=$(dpkg-query -W -f '${Version}' libslurm-dev | cut -d- -f1)  # 22.05.8

# Whether .venv's pyslurm loads here and was built for this Slurm's major (22.05 <-> API 22.5).
# Importing pyslurm reads a slurm.conf (libslurm exits the process without one), and the cluster's may
# not exist yet: a two-line one is enough to load it.
why=$(mktemp)  # the last failed import's stderr, shown when nothing fits
trap 'rm -f "$why"' EXIT
fits() {
    conf=$(mktemp)
    printf 'ClusterName=setup\nSlurmctldHost=localhost\n' >"$conf"
    SLURM_CONF=$conf "$python" - "$slurm" <<'PY' 2>"$why"

import sys
import pyslurm
built = pyslurm.slurm_api_version()[:2]
wanted = tuple(int(p) for p in sys.argv[1].split(".")[:2])
sys.exit(0 if built == wanted else 1)
PY
    status=$?
    rm -f "$conf"
    return $status
}

fits && exit 0
pip_install() { "$python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$@"; }
if [ -f "$wheel" ] && pip_install "$wheel" 2>/dev/null && fits; then
    echo "setup_pyslurm: installed $(basename "$wheel")"
    exit 0
fi
if [ ! -f "$source" ]; then
    echo "setup_pyslurm: no pyslurm fits Slurm $slurm and there is no source at $source" \
         "(set BRIDGE_PYSLURM_SOURCE to pyslurm's source for Slurm ${slurm%.*})" >&2
    exit 1
fi
echo "setup_pyslurm: building pyslurm from $source for Slurm $slurm (a few minutes)"
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
SLURM_LIB_DIR=/usr/lib/$multiarch SLURM_INCLUDE_DIR=/usr/include pip_install "$source"
if ! fits; then
    echo "setup_pyslurm: pyslurm built from $source does not load for Slurm $slurm:" >&2
    cat "$why" >&2
    exit 1
fi
