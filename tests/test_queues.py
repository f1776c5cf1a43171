"""queues.toml against the live cluster's partitions and nodes (recorded outputs), and syncing to the DB."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from bridge import slurm as cmds
from bridge.db import create_session_factory
from bridge.models import Queue, Worker
from bridge.queues import ClusterView, check_queues, sync_queues, sync_workers
from bridge.queues_config import EnvironmentRef, QueueConfig

DATA = Path(__file__).parent / "data"
GOOD = QueueConfig("default", "cpu", memory_limit=1000, time_limit=30, cores_per_slot=1, max_slots_per_user=4,
                   environments=(EnvironmentRef("Python", "3.11"),))


def _cluster() -> ClusterView:
    partitions = cmds.parse_scontrol_show_partition((DATA / "scontrol_show_partition.txt").read_text())
    nodes = cmds.parse_sinfo_nodes((DATA / "sinfo_nodes.txt").read_text())
    return ClusterView(tuple(partitions), tuple(nodes))


def test_a_mapping_within_the_limits_has_no_problem():
    assert check_queues({"default": GOOD, "long": replace(GOOD, name="long", partition="long", time_limit=600)},
                        _cluster()) == []


def test_unknown_partition_names_the_key_and_the_valid_partitions():
    problems = check_queues({"x": replace(GOOD, name="x", partition="gpu")}, _cluster())
    assert problems == ["queues.x.partition: no partition 'gpu' on the cluster; valid: cpu, debug, long"]


def test_each_limit_over_the_cluster_is_reported_at_once():
    bad = replace(GOOD, name="debug", partition="debug", time_limit=30, memory_limit=5000, cores_per_slot=8)
    problems = check_queues({"debug": bad}, _cluster())
    assert len(problems) == 3
    assert problems[0].startswith("queues.debug.time_limit: 30 min is over the MaxTime of partition 'debug' (5 min)")
    assert problems[1].startswith("queues.debug.memory_limit: 5000 MB")
    assert problems[2].startswith("queues.debug.cores_per_slot: 8")


def test_sync_loads_queues_and_workers_idempotently(db_url):
    make = create_session_factory(db_url)
    with make() as session:
        for _ in range(2):
            sync_queues(session, {"default": GOOD})
            sync_workers(session, _cluster().nodes)
        queue = session.scalar(select(Queue))
        assert (queue.name, queue.partition, queue.memory_limit,
                queue.max_slots_per_user) == ("default", "cpu", 1000, 4)
        assert [(e.name, e.version) for e in queue.environments] == [("Python", "3.11")]
        workers = session.scalars(select(Worker).order_by(Worker.name)).all()
        assert [(w.name, w.cores, w.memory) for w in workers] == [("n1", 4, 4000), ("n2", 4, 4000)]
        assert not any(w.active for w in workers)  # the recorded nodes were `inval`
        sync_workers(session, [replace(_cluster().nodes[0], state="idle")])
        session.expire_all()
        states = {w.name: w.active for w in session.scalars(select(Worker))}
        assert states == {"n1": True, "n2": False}
