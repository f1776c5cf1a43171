"""A 10-element array on the real cluster, through the command seam: every terminal state sacct knows.

Elements exit 0, one exits 3, one is scancelled as ID_5, one outlives --time.
Slurm checks time limits about every 30 s, so the TIMEOUT takes ~90 s: the one
test that uses this array (test_poller_outcomes.py, the TIMEOUT test) shares that
wait with the bridge's own TIMEOUT element. With BRIDGE_RECORD_FIXTURES=1 it saves
the raw sbatch and sacct outputs under tests/data/ for the pure parser tests.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bridge.sacct import parse_sacct
from bridge.slurm import parse_sbatch_parsable, sacct_argv, sbatch_argv

DATA = Path(__file__).parent.parent / "data"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"}

SCRIPT = """#!/bin/bash
#SBATCH --job-name=bb-array10
#SBATCH --time=1
#SBATCH --output=/dev/null
#SBATCH --array=0-9
case "$SLURM_ARRAY_TASK_ID" in
  3) exit 3 ;;
  5|7) sleep 300 ;;
  *) sleep 1 ;;
esac
"""


@dataclass
class RawArray:
    job_id: int
    since: datetime
    sbatch_stdout: str


def _sacct(slurm, job_id: int, since: datetime) -> str:
    return slurm.run(sacct_argv(since, job_ids=[job_id]), timeout=30).check().stdout


def _wait(slurm, job_id: int, since: datetime, done, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _sacct(slurm, job_id, since)
        if done(parse_sacct(text)) or time.monotonic() > deadline:
            return text
        time.sleep(1.0)


def start(slurm) -> RawArray:
    """Submit the array and scancel element 5 once it runs (element 7 is left to time out)."""
    since = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=1)  # Slurm commands run in UTC
    submitted = slurm.run(sbatch_argv(), stdin=SCRIPT, timeout=30).check()
    job_id = parse_sbatch_parsable(submitted.stdout)

    def element_5_runs(records):
        return any(r.array_task_id == 5 and r.state == "RUNNING" for r in records)

    _wait(slurm, job_id, since, element_5_runs, timeout=60)
    slurm.run(["scancel", f"{job_id}_5"], timeout=30).check()
    return RawArray(job_id, since, submitted.stdout)


def check(slurm, array: RawArray) -> None:
    """Wait until every element is terminal in sacct; assert each one's state and exit code."""
    def all_terminal(records):
        elements = [r for r in records if r.is_element and not r.pending_range]
        return len(elements) == 10 and all(r.state in TERMINAL for r in elements)

    text = _wait(slurm, array.job_id, array.since, all_terminal, timeout=200)
    by_index = {r.array_task_id: r for r in parse_sacct(text) if r.is_element}
    assert sorted(by_index) == list(range(10)), text

    states = {i: (r.state, r.exit_code) for i, r in by_index.items()}
    assert states[3] == ("FAILED", 3)
    assert states[5][0] == "CANCELLED"
    assert states[7][0] == "TIMEOUT"
    assert all(states[i] == ("COMPLETED", 0) for i in (0, 1, 2, 4, 6, 8, 9)), states
    assert {r.node_list for r in by_index.values()} <= {"n1", "n2"}
    assert all(r.partition == "cpu" and r.name == "bb-array10" for r in by_index.values())

    if os.environ.get("BRIDGE_RECORD_FIXTURES") == "1":
        (DATA / "sbatch_array10.txt").write_text(array.sbatch_stdout)
        (DATA / "sacct_array10.txt").write_text(text)
