"""Submitting N splits: the bridge's one array per job against one sbatch per split, in the same run.

Both submit held jobs (nothing runs; everything is scancelled afterwards), so the
numbers are submission cost only. Usage: python bench/submit_arrays.py [N]
"""

from __future__ import annotations

import sys
import time

from common import HELD_QUEUE, bridge_env, one_block, ratio_line

from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.submit import assign_splits_to_workers

PER_SPLIT_SCRIPT = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --output=/dev/null\n#SBATCH --time=5\ntrue\n"


def ours(n: int) -> tuple[float, list[int]]:
    """Schedule one block of n splits and time assign_splits_to_workers (claim, spool, render, sbatch, record)."""
    env = bridge_env(HELD_QUEUE)
    declaration = one_block("bench", n)
    with env.sessions() as session:
        schedule_experiment(session, load_experiment(session, declaration))
        split_new_jobs(session)
        started = time.perf_counter()
        submissions = assign_splits_to_workers(session, env.backend)
        elapsed = time.perf_counter() - started
    assert sum(len(s.split_ids) for s in submissions) == n, submissions
    return elapsed, [s.job_id for s in submissions]


def baseline(n: int) -> tuple[float, list[int]]:
    """One sbatch per split, as peers do."""
    env = bridge_env(HELD_QUEUE)
    started = time.perf_counter()
    ids = [env.backend.client.submit(PER_SPLIT_SCRIPT) for _ in range(n)]  # one sbatch each
    return time.perf_counter() - started, ids


def main(n: int) -> None:
    env = bridge_env(HELD_QUEUE)
    mine, my_ids = ours(n)
    theirs, their_ids = baseline(n)
    env.backend.client.cancel(map(str, my_ids + their_ids))
    print(f"submitting {n} splits ({len(my_ids)} array(s) vs {len(their_ids)} sbatch calls)")
    print(ratio_line("submit", mine, theirs))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
