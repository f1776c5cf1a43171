#!/usr/bin/env bash
# The main job: set up, bring the local Slurm cluster up, run the demo through it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/beat-bridge demo "$@"
