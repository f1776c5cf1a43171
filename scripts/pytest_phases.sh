#!/usr/bin/env bash
# pytest over the whole suite in its two phases (tests/phases.py); scripts/test.sh runs it after set-up.
#
# Most live tests wait on Slurm, not on the CPU: the shared phase runs $BRIDGE_TEST_WORKERS (4) of
# them at once (pytest-xdist; worksteal evens out the long ones). The exclusive phase then runs the
# tests marked exclusive (they stop daemons, set nodes down, change associations, restart PostgreSQL
# or take the cluster down) one after another on one worker, and beside them, on the other workers,
# only the tests that use no shared part (fakes, recorded replies, SQLite) -- see tests/phases.py.
#
# Both phases always run; either one failing fails the whole with its exit code. Exit 5 (no test
# collected) is kept when neither phase ran a test, and when a phase of the whole suite (no
# arguments) ran none: its tests went missing. Usage: bash scripts/pytest_phases.sh [pytest args]
# ($BRIDGE_TEST_PYTHON: the interpreter, .venv/bin/python by default).
set -uo pipefail
cd "$(dirname "$0")/.."
python="${BRIDGE_TEST_PYTHON:-.venv/bin/python}"
workers="${BRIDGE_TEST_WORKERS:-4}"

"$python" -m pytest -n "$workers" --dist worksteal --phase=shared "$@"
shared=$?
"$python" -m pytest -n 3 --dist loadgroup --phase=exclusive "$@"
exclusive=$?
echo "scripts/pytest_phases.sh: shared phase (-n $workers) exited $shared, exclusive phase (-n 3) exited $exclusive" >&2

for status in "$shared" "$exclusive"; do
    if [ "$status" != 0 ] && [ "$status" != 5 ]; then
        exit "$status"
    fi
done
if [ "$shared" = 5 ] && [ "$exclusive" = 5 ]; then
    exit 5
fi
if [ "$#" = 0 ] && { [ "$shared" = 5 ] || [ "$exclusive" = 5 ]; }; then
    echo "scripts/pytest_phases.sh: a phase of the whole suite collected no test" >&2
    exit 5
fi
exit 0
