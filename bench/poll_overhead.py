"""The poller's cost per cycle against the bare status call it makes, with a small and a large history.

A held array of N splits stays active (PENDING) on the real cluster; one poll
(squeue for all active arrays, DB read, per-split checks) is timed against the
same squeue call run bare, median of several rounds. Then the database is given a
large history (state-history rows, results, finished splits of another job) and
the same is measured again. Target: ours/bare <= 1.33 whatever the history.
Usage: python bench/poll_overhead.py [active_splits] [history_rows]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime

from common import HELD_QUEUE, bridge_env, one_block, ratio_line
from sqlalchemy import insert, select

from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.models import Job, JobSplit, Result, StateHistory
from bridge.slurm import squeue_argv
from bridge.submit import assign_splits_to_workers
from poller.poll import active_splits, poll_once

ROUNDS = 41


def measure(env, session) -> tuple[float, float]:
    """Median seconds of one poll_once and of the bare squeue call it makes."""
    ids = sorted({int(s.slurm_job_id) for s in active_splits(session)})
    ours, bare = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        report = poll_once(session, env.backend)
        ours.append(time.perf_counter() - started)
        assert report.squeue_calls == 1 and report.sacct_calls == 0, report
        started = time.perf_counter()
        env.backend.runner.run(squeue_argv(ids), timeout=60).check()  # the baseline: the bare command
        bare.append(time.perf_counter() - started)
    return statistics.median(ours), statistics.median(bare)


def add_history(session, rows: int) -> None:
    """A long-lived bridge's leftovers: transitions, results, and finished splits of another job."""
    now = datetime.utcnow()
    session.execute(insert(StateHistory), [
        {"entity": "job_splits", "entity_id": i, "from_status": "P", "to_status": "C", "at": now, "source": "bench"}
        for i in range(rows)])
    session.execute(insert(Result), [{"status": 0, "statistics": {}, "creation_date": now} for _ in range(rows // 2)])
    experiment = load_experiment(session, one_block("history", 1))
    schedule_experiment(session, experiment)
    split_new_jobs(session)
    job = session.scalar(select(Job).where(Job.block_id == experiment.blocks[0].id))
    session.execute(insert(JobSplit), [{"job_id": job.id, "split_index": i + 1, "status": "C"}
                                       for i in range(rows // 5)])
    session.commit()


def main(active: int, history: int) -> None:
    env = bridge_env(HELD_QUEUE)
    with env.sessions() as session:
        schedule_experiment(session, load_experiment(session, one_block("active", active)))
        split_new_jobs(session)
        ids = [s.job_id for s in assign_splits_to_workers(session, env.backend)]
        poll_once(session, env.backend)  # first sight records the PENDING state once
        try:
            small = measure(env, session)
            add_history(session, history)
            large = measure(env, session)
        finally:
            env.backend.client.cancel(map(str, ids))
    print(f"{active} active splits; poll vs bare squeue, median of {ROUNDS}")
    print(ratio_line("empty history", *small))
    print(ratio_line(f"history of {history} transitions, {history // 2} results, {history // 5} finished splits",
                     *large))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200, int(sys.argv[2]) if len(sys.argv) > 2 else 100000)
