"""The admins' queue mapping and the cluster's nodes, loaded into the database.

Checking the mapping against the cluster (`beat-bridge queues check`) is
bridge.queue_lint and its siblings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import slurm as cmds
from bridge.models import Queue, Worker
from bridge.queues_config import QueueConfig
from bridge.scheduling import upsert_queue
from bridge.slurm_client import SlurmClient


@dataclass(frozen=True)
class ClusterView:
    """What the live cluster says about its partitions and nodes."""

    partitions: tuple[Mapping[str, str], ...]
    nodes: tuple[cmds.NodeInfo, ...]


def read_cluster(client: SlurmClient) -> ClusterView:
    """Partitions and nodes of the cluster behind the client (two commands)."""
    return ClusterView(tuple(client.partitions()), tuple(client.nodes()))


def mapping_version(queue: Queue) -> str:
    """A short fingerprint of what a queue row maps to (partition and limits): audits tell a change of
    the admins' mapping by it, since a queue's name outlives its settings."""
    text = "|".join(str(v) for v in (queue.partition, queue.memory_limit, queue.time_limit,
                                      queue.cores_per_slot, queue.max_slots_per_user))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def sync_queues(session: Session, queues: Mapping[str, QueueConfig]) -> None:
    """Create or update one Queue row (and its environments) per configured queue; commits."""
    for q in queues.values():
        upsert_queue(session, name=q.name, partition=q.partition, memory_limit=q.memory_limit,
                     time_limit=q.time_limit, cores_per_slot=q.cores_per_slot,
                     max_slots_per_user=q.max_slots_per_user,
                     environments=[(e.name, e.version) for e in q.environments])
    session.commit()


def sync_workers(session: Session, nodes: Sequence[cmds.NodeInfo]) -> None:
    """One Worker row per Slurm node (cores, memory, state); nodes gone from Slurm become inactive."""
    seen = set()
    for node in nodes:
        if node.name in seen:  # sinfo -N lists a node once per partition
            continue
        seen.add(node.name)
        worker = session.scalar(select(Worker).where(Worker.name == node.name)) or Worker(name=node.name)
        worker.cores, worker.memory, worker.state, worker.active = node.cpus, node.memory_mb, node.state, node.usable
        session.add(worker)
    for worker in session.scalars(select(Worker).where(Worker.name.not_in(seen))):
        worker.active = False
    session.commit()

