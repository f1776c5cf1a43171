#!/usr/bin/env bash
# The whole test suite: set up, bring the local Slurm cluster up, run pytest against it.
set -euo pipefail
cd "$(dirname "$0")/.."
BRIDGE_SETUP_TEST_PARTS=1 bash scripts/setup.sh
.venv/bin/beat-bridge cluster up
export BRIDGE_START_CLUSTER=1
exec .venv/bin/python -m pytest "$@"
