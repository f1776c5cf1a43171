"""Submitting N splits: the bridge's one array per job against one sbatch per split, in the same run.

Both submit held jobs (nothing runs; everything is scancelled afterwards), so the
numbers are submission cost only: ours is assign_splits_to_workers (candidates,
claim, manifest, render, sbatch, record), timed as the daemon runs it, i.e. in a
process that has submitted before (one small array first, so SQLAlchemy's and
jinja2's one-time compiling is not counted; the cold figure of a fresh process is
printed too). Garbage left by setting up the experiment is collected before each
timing, so neither side pays for the other's or the set-up's allocations.
Each run puts 2N jobs into slurmctld (cancelled, kept for MinJobAge): on a cluster
shared with other work, leave a few minutes between runs.
Usage: python bench/submit_arrays.py [N]
"""

from __future__ import annotations

import gc
import sys
import time

from common import HELD_QUEUE, bridge_env, one_block, ratio_line

from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.submit import assign_splits_to_workers

PER_SPLIT_SCRIPT = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --output=/dev/null\n#SBATCH --time=5\ntrue\n"


def submit(env, name: str, n: int) -> tuple[float, list[int]]:
    """Schedule one block of n splits and time assign_splits_to_workers."""
    with env.sessions() as session:
        schedule_experiment(session, load_experiment(session, one_block(name, n)))
        split_new_jobs(session)
        gc.collect()
        started = time.perf_counter()
        submissions = assign_splits_to_workers(session, env.backend)
        elapsed = time.perf_counter() - started
    assert sum(len(s.split_ids) for s in submissions) == n, submissions
    return elapsed, [s.job_id for s in submissions]


def ours(n: int) -> tuple[float, float, list[int]]:
    """The cold submission of a fresh process (3 splits), then n splits as a running daemon submits them."""
    env = bridge_env(HELD_QUEUE)
    cold, first = submit(env, "cold", 3)
    warm, ids = submit(env, "bench", n)
    return warm, cold, first + ids


def baseline(n: int) -> tuple[float, list[int]]:
    """One sbatch per split, as peers do."""
    env = bridge_env(HELD_QUEUE)
    gc.collect()
    started = time.perf_counter()
    ids = [env.backend.client.submit(PER_SPLIT_SCRIPT) for _ in range(n)]  # one sbatch each
    return time.perf_counter() - started, ids


def main(n: int) -> None:
    env = bridge_env(HELD_QUEUE)
    mine, cold, my_ids = ours(n)
    theirs, their_ids = baseline(n)
    env.backend.client.cancel(map(str, my_ids + their_ids))
    print(f"submitting {n} splits ({len(my_ids) - 1} array(s) vs {len(their_ids)} sbatch calls); "
          f"a fresh process's first array (3 splits) took {cold:.3f} s")
    print(ratio_line("submit", mine, theirs) + f" ({theirs / mine:.0f}x faster)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
