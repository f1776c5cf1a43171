"""What bridge.metrics adds to a cycle: its GROUP BY and the textfile, against the poll's own read of the splits.

N live splits (experiments of 5,000-split blocks over 4 queues, half running,
all submitted) are made through the real declaration and splitting code; then
the median of ROUNDS runs of: split_counts + queue_names (the per-cycle
query), the whole after_cycle (query, gauges, exposition text, atomic
textfile), and, as the reference, poller.poll.active_splits (the read every
cycle already makes of the same rows). No Slurm needed.
Usage: python bench/metrics_cost.py [splits] [database_url]   (default 100000, SQLite in a temporary directory)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import median_seconds
from sqlalchemy import select, update

from bridge.db import create_session_factory
from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.metrics import Metrics, queue_names, split_counts
from bridge.models import JobSplit, SplitStatus
from bridge.scheduling import upsert_queue
from poller.poll import active_splits

ROUNDS = 21
PER_BLOCK = 5000
QUEUES = ("q0", "q1", "q2", "q3")


class Loop:
    last_cycle_seconds, unknown_states, stuck, snapshot_sacct_calls = 0.1, 0, 0, 0


class Report:
    submitted, error = [], None


def populate(sessions, splits: int) -> None:
    with sessions() as session:
        for name in QUEUES:
            upsert_queue(session, name=name, partition="cpu", memory_limit=100, time_limit=5,
                         max_slots_per_user=100000, environments=[("python", "3.11")])
        session.commit()
        for n in range(max(1, splits // PER_BLOCK)):
            experiment = load_experiment(session, {"name": f"e{n}", "author": "bench", "blocks": {"b": {
                "algorithm": "p.m:f", "queue": QUEUES[n % len(QUEUES)], "environment": "python-3.11",
                "required_slots": PER_BLOCK, "parameters": {"n": n}, "outputs": ["out"],
                "inputs": {"in": {"dataset": "numbers", "size": PER_BLOCK}}}}})
            schedule_experiment(session, experiment)
        split_new_jobs(session)
        session.execute(update(JobSplit).values(slurm_job_id=JobSplit.job_id, submission_tag="bench",
                                                slurm_element_id=JobSplit.id.cast(type_=JobSplit.slurm_element_id.type)))
        session.execute(update(JobSplit).where(JobSplit.id % 2 == 0).values(status=SplitStatus.PROCESSING))
        session.commit()


def main(splits: int, url: str | None) -> None:
    root = Path(tempfile.mkdtemp(prefix="beat-bench-metrics-"))
    sessions = create_session_factory(url or f"sqlite:///{root / 'bench.sqlite'}")
    populate(sessions, splits)
    metrics = Metrics(textfile=root / "bridge.prom")
    with sessions() as session:
        rows = session.scalar(select(JobSplit.id).order_by(JobSplit.id.desc()).limit(1))
        query = median_seconds(lambda: (split_counts(session), queue_names(session)), ROUNDS)
        whole = median_seconds(lambda: metrics.after_cycle(session, Loop(), Report()), ROUNDS)
        poll_read = median_seconds(lambda: active_splits(session), ROUNDS)
    print(f"{rows} live splits on {sessions.kw['bind'].dialect.name}: GROUP BY {query * 1000:.1f} ms, "
          f"after_cycle (query + textfile) {whole * 1000:.1f} ms, the poll's active_splits read "
          f"{poll_read * 1000:.1f} ms; ratio after_cycle/poll read {whole / poll_read:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, sys.argv[2] if len(sys.argv) > 2 else None)
