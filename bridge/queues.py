"""The admins' queue mapping and the cluster's nodes, loaded into the database.

`sync_queues` makes the Queue rows say what queues.toml says, under BEAT's
rule (bridge.queue_sync): a queue live work uses is neither removed nor
narrowed unless forced. Each synced row carries everything its scripts render
and its version (bridge.queue_settings); the versions are kept
(bridge.queue_versions) so that jobs in flight keep rendering with theirs.
Checking the mapping against the cluster (`beat-bridge queues check`) is
bridge.queue_lint and its siblings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import slurm as cmds
from bridge.errors import BridgeError
from bridge.history import locked
from bridge.models import Queue, Worker
from bridge.queue_settings import from_config, from_row, mapping_version, write_row
from bridge.queue_sync import QueueChange, QueueState, plan_sync
from bridge.queue_versions import live_uses, store_version
from bridge.queues_config import QueueConfig
from bridge.scheduling import upsert_queue
from bridge.slurm_client import SlurmClient

__all__ = ["ClusterView", "SyncRefused", "database_states", "file_states", "mapping_version", "read_cluster",
           "sync_queues", "sync_workers"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterView:
    """What the live cluster says about its partitions and nodes."""

    partitions: tuple[Mapping[str, str], ...]
    nodes: tuple[cmds.NodeInfo, ...]


def read_cluster(client: SlurmClient) -> ClusterView:
    """Partitions and nodes of the cluster behind the client (two commands)."""
    return ClusterView(tuple(client.partitions()), tuple(client.nodes()))


class SyncRefused(BridgeError):
    """The sync would remove or narrow a queue that live experiments use; nothing was changed."""

    def __init__(self, refused: Sequence[QueueChange]) -> None:
        self.refused = list(refused)
        lines = [f"  {c.line()}\n" + "".join(f"    {u.text()}\n" for u in c.affected) for c in refused]
        super().__init__(f"sync refused, nothing changed: {len(refused)} queue(s) that live experiments use "
                         "would be removed or narrowed (BEAT's rule; --force applies it anyway, and jobs "
                         "already submitted keep their mapping version):\n" + "".join(lines).rstrip())


def file_states(queues: Mapping[str, QueueConfig], templates_dirs: Sequence[Path] = ()) -> dict[str, QueueState]:
    """queues.toml's side, by queue name."""
    return {name: QueueState(from_config(q, templates_dirs), tuple(sorted((e.name, e.version)
                                                                          for e in q.environments)))
            for name, q in queues.items()}


def unsynced(session: Session, queues: Mapping[str, QueueConfig], templates_dirs: Sequence[Path] = ()) -> list[str]:
    """Queues whose row differs from queues.toml (scripts render from the rows: an edit or an upgrade that
    added rendered fields takes effect only after `beat-bridge queues sync`)."""
    from bridge.queue_sync import diff_queues

    return sorted({d.queue for d in diff_queues(file_states(queues, templates_dirs), database_states(session), None)})


def database_states(session: Session) -> dict[str, QueueState]:
    """The Queue rows' side, by queue name."""
    return {q.name: QueueState(from_row(q), tuple(sorted((e.name, e.version) for e in q.environments)))
            for q in session.scalars(select(Queue).order_by(Queue.name))}


def sync_queues(session: Session, queues: Mapping[str, QueueConfig], *, templates_dirs: Sequence[Path] = (),
                force: bool = False, dry_run: bool = False) -> list[QueueChange]:
    """Make the Queue rows (and their environments) say what queues.toml says; the changes (commits).

    Rows of queues gone from the file are removed. In one locked transaction:
    the plan is made against the live uses of this moment. SyncRefused when a
    change removes or narrows a queue live work uses, unless `force`; with
    `dry_run` the plan is returned (refusals marked) and nothing is written.
    """
    file = file_states(queues, templates_dirs)
    with locked(session):
        plan = plan_sync(file, database_states(session), live_uses(session))
        refused = [change for change in plan if change.refused]
        if dry_run:
            session.rollback()
            return plan
        if refused and not force:
            raise SyncRefused(refused)
        for name, state in file.items():
            row = upsert_queue(session, name=name, partition=state.settings.partition,
                               memory_limit=state.settings.memory_limit, time_limit=state.settings.time_limit,
                               environments=state.environments)
            write_row(row, state.settings)
            store_version(session, name, state.settings)
        for change in plan:
            if change.action == "remove":
                session.delete(session.scalar(select(Queue).where(Queue.name == change.queue)))
        for change in refused:
            log.warning("queue %s %s by force although live work uses it: %s", change.queue,
                        "removed" if change.action == "remove" else "narrowed",
                        "; ".join(u.text() for u in change.affected))
    return plan


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
