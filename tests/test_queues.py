"""Syncing queues.toml and the recorded `sinfo -N` nodes to the database (the checks: test_queue_lint*.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from bridge import slurm as cmds
from bridge.db import create_session_factory
from bridge.models import Queue, Worker
from bridge.queues import sync_queues, sync_workers
from bridge.queues_config import EnvironmentRef, QueueConfig

DATA = Path(__file__).parent / "data"
GOOD = QueueConfig("default", "cpu", memory_limit=1000, time_limit=30, cores_per_slot=1, max_slots_per_user=4,
                   environments=(EnvironmentRef("Python", "3.11"),))


def _nodes() -> list[cmds.NodeInfo]:
    return cmds.parse_sinfo_nodes((DATA / "sinfo_nodes.txt").read_text())


def test_sync_loads_queues_and_workers_idempotently(db_url):
    make = create_session_factory(db_url)
    with make() as session:
        for _ in range(2):
            sync_queues(session, {"default": GOOD})
            sync_workers(session, _nodes())
        queue = session.scalar(select(Queue))
        assert (queue.name, queue.partition, queue.memory_limit,
                queue.max_slots_per_user) == ("default", "cpu", 1000, 4)
        assert [(e.name, e.version) for e in queue.environments] == [("Python", "3.11")]
        workers = session.scalars(select(Worker).order_by(Worker.name)).all()
        assert [(w.name, w.cores, w.memory) for w in workers] == [("n1", 4, 4000), ("n2", 4, 4000)]
        assert not any(w.active for w in workers)  # the recorded nodes were `inval`
        sync_workers(session, [replace(_nodes()[0], state="idle")])
        session.expire_all()
        states = {w.name: w.active for w in session.scalars(select(Worker))}
        assert states == {"n1": True, "n2": False}
