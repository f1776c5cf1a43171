#!/usr/bin/env bash
# Every set-up step on a fresh Debian 12 machine, as root, idempotent and quick when done:
# Python venv with the package; with BRIDGE_SETUP_TEST_PARTS=1 also what the tests need:
# openssh-server, Debian's chromium and chromedriver (the HTML report's browser test), systemd-analyze,
# and PostgreSQL where none answers on 127.0.0.1:5432.
# The Slurm packages and daemons are `beat-bridge cluster up`'s job.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=0
apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Debian packages $*; run as root or: sudo apt-get install -y $*" >&2
        exit 1
    fi
    if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Python: a venv of the first python3 on PATH (Debian's needs python3-venv for ensurepip).
if [ ! -x .venv/bin/python ]; then
    command -v python3 >/dev/null || apt_install python3
    if ! python3 -m venv .venv 2>/dev/null; then
        rm -rf .venv
        apt_install python3-venv
        python3 -m venv .venv
    fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,postgres]'
# Bytecode now, as pip does for a regular install (an editable one leaves it to the first run, which
# writes none under PYTHONDONTWRITEBYTECODE): a command's start-up then reads .pyc files instead of
# compiling ~100 modules (~40 ms of `beat-bridge experiments list`, bench/cli_latency.py). A .pyc older
# than its source is ignored and recompiled, so this is only ever a speed-up.
.venv/bin/python -m compileall -q -j 0 bridge poller sbatch_scripts >/dev/null

# BEAT algorithm blocks (issue 14): the `beat` extra, beat.backend.python 1.7.15, which imports `imp`
# and so installs on Python 3.11 at most; on a newer Python the demo runs without its BEAT experiment.
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[beat]'
else
    echo "setup: Python >= 3.12: not installing the beat extra (beat.backend.python needs Python <= 3.11)" >&2
fi

# pyslurm (runner = "pyslurm" and its tests): the shared wheel when it fits, else built from source.
if [ "${BRIDGE_SETUP_PYSLURM:-0}" = 1 ] || [ "${BRIDGE_SETUP_TEST_PARTS:-0}" = 1 ]; then
    bash scripts/setup_pyslurm.sh
fi

[ "${BRIDGE_SETUP_TEST_PARTS:-0}" = 1 ] || exit 0

# The SSH runner's tests start their own OpenSSH server on loopback.
[ -x /usr/sbin/sshd ] || apt_install openssh-server

# deploy/beat-bridge.service is checked with `systemd-analyze verify` (Debian's systemd package; it starts nothing).
command -v systemd-analyze >/dev/null || apt_install systemd

# The HTML audit report is loaded in a real headless browser: Debian's, driven by Selenium through
# Debian's chromedriver (nothing downloads a browser of its own here).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    apt_install chromium chromium-driver
fi

# PostgreSQL on 127.0.0.1:5432 with trust auth for the tests (the python-svc machines have it).
if ! .venv/bin/python - <<'PY' 2>/dev/null
import socket; socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
PY
then
    echo "setup: no PostgreSQL on 127.0.0.1:5432: installing Debian's and trusting loopback for the tests"
    apt_install postgresql
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main reload
fi
