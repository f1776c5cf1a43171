"""The admins' queue mapping against the live cluster: check it, and load it into the database.

`check_queues` is pure: it compares queues.toml with what `scontrol show
partition` and `sinfo -N` report, so `beat-bridge queues check` can say every
problem at once instead of letting sbatch refuse arrays one by one.
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


def check_queues(queues: Mapping[str, QueueConfig], cluster: ClusterView) -> list[str]:
    """Every mismatch between the queue mapping and the cluster, one sentence each."""
    by_name = {p["PartitionName"]: p for p in cluster.partitions}
    problems = []
    for queue in queues.values():
        where = f"queues.{queue.name}"
        part = by_name.get(queue.partition)
        if part is None:
            problems.append(f"{where}.partition: no partition {queue.partition!r} on the cluster; "
                            f"valid: {', '.join(sorted(by_name)) or 'none'}")
            continue
        problems += _limits(where, queue, part, [n for n in cluster.nodes if queue.partition in n.partitions])
    return problems


def _limits(where: str, queue: QueueConfig, part: Mapping[str, str], nodes: Sequence[cmds.NodeInfo]) -> list[str]:
    problems = []
    max_time = cmds.parse_slurm_duration(part.get("MaxTime", "UNLIMITED"))
    if max_time is not None and queue.time_limit > max_time:
        problems.append(f"{where}.time_limit: {queue.time_limit} min is over the MaxTime of partition "
                        f"{queue.partition!r} ({max_time} min)")
    if not nodes:
        return problems + [f"{where}: partition {queue.partition!r} has no nodes"]
    memory = max(n.memory_mb for n in nodes)
    if queue.memory_limit > memory:
        problems.append(f"{where}.memory_limit: {queue.memory_limit} MB is more than any node of "
                        f"{queue.partition!r} has ({memory} MB)")
    cpus = max(n.cpus for n in nodes)
    if queue.cores_per_slot > cpus:
        problems.append(f"{where}.cores_per_slot: {queue.cores_per_slot} is more than any node of "
                        f"{queue.partition!r} has ({cpus} CPUs)")
    return problems


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

