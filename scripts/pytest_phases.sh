#!/usr/bin/env bash
# pytest over the whole suite in its phases (tests/phases.py); scripts/test.sh runs it after set-up.
#
# 1. shared: the tests that use the shared cluster or PostgreSQL, $BRIDGE_TEST_WORKERS (4) at once
#    (pytest-xdist; worksteal evens out the long ones): they mostly wait on Slurm, not on the CPU.
# 2. exclusive: the tests marked exclusive (they stop daemons, set nodes down, change associations,
#    restart PostgreSQL, take the cluster down), one after another; and at the same time, in a
#    second pytest on 2 workers, the isolated tests (fakes, recordings, SQLite: no shared part, so
#    no outage can reach them) on the cores the outages leave idle. Its output follows phase 2's.
#
# Every phase always runs; one failing fails the whole with its exit code. Exit 5 (no test
# collected) is kept when no phase ran a test, and when a phase of the whole suite (no arguments)
# ran none: its tests went missing. Usage: bash scripts/pytest_phases.sh [pytest args]
# ($BRIDGE_TEST_PYTHON: the interpreter, .venv/bin/python by default).
set -uo pipefail
cd "$(dirname "$0")/.."
python="${BRIDGE_TEST_PYTHON:-.venv/bin/python}"
workers="${BRIDGE_TEST_WORKERS:-4}"
isolated_log="$(mktemp "${TMPDIR:-/tmp}/bridge-isolated-phase.XXXXXX")"
trap 'rm -f "$isolated_log"' EXIT

"$python" -m pytest -n "$workers" --dist worksteal --phase=shared "$@"
shared=$?
"$python" -m pytest -n 2 --dist worksteal --phase=isolated "$@" >"$isolated_log" 2>&1 &
isolated_pid=$!
"$python" -m pytest --phase=exclusive "$@"
exclusive=$?
wait "$isolated_pid"
isolated=$?
echo "=== the isolated phase (run beside the exclusive one) ==="
cat "$isolated_log"
echo "scripts/pytest_phases.sh: shared phase (-n $workers) exited $shared, exclusive $exclusive," \
     "isolated (-n 2) $isolated" >&2

statuses=("$shared" "$exclusive" "$isolated")
for status in "${statuses[@]}"; do
    if [ "$status" != 0 ] && [ "$status" != 5 ]; then
        exit "$status"
    fi
done
if [ "$shared$exclusive$isolated" = 555 ]; then
    exit 5
fi
if [ "$#" = 0 ] && [[ " ${statuses[*]} " == *" 5 "* ]]; then
    echo "scripts/pytest_phases.sh: a phase of the whole suite collected no test" >&2
    exit 5
fi
exit 0
