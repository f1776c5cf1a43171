#!/usr/bin/env bash
# The whole test suite: set up, lint, bring the local Slurm cluster up, run pytest against it.
set -euo pipefail
cd "$(dirname "$0")/.."
BRIDGE_SETUP_TEST_PARTS=1 bash scripts/setup.sh
# Lint first (imports sorted, pyflakes, line length: pyproject.toml's [tool.ruff]): seconds, and CI enforces it.
.venv/bin/ruff check .
.venv/bin/beat-bridge cluster up
export BRIDGE_START_CLUSTER=1

# pytest in phases: the shared tests side by side, then the exclusive ones alone with the isolated ones beside them.
exec bash scripts/pytest_phases.sh "$@"
