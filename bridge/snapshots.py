"""Accounting snapshots: one row added per attempt that ran on Slurm, its sacct figures read later, bounded.

`record_settled` runs inside the transaction that makes a split final
(bridge.slurm_events.apply_slurm_state), `failed_attempt` inside the one that
queues a failed attempt again (bridge.resubmission): each copies BEAT's names
and the attempt's number, and makes no Slurm call. `refresh` runs once per cycle after the poll (bridge.cycle): for the
pending snapshots it calls sacct with steps (bridge.accounting), one call per
USAGE_CHUNK (500) elements, in a window from their earliest submit, and
nothing at all when none is due. sacct lags squeue, so a snapshot stays
pending until sacct has it settled (End on the allocation and the batch step),
tried again no sooner than RETRY_AFTER, and given up after GIVE_UP from its
first sight: unavailable, keeping what was read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.accounting import Usage, UsageTable
from bridge.errors import CommandError
from bridge.models import (
    FINAL_SPLIT,
    AccountingSnapshot,
    Block,
    Job,
    JobSplit,
    Queue,
    SnapshotStatus,
    SplitStatus,
    utcnow,
)
from bridge.queues import mapping_version
from bridge.slurm_client import USAGE_CHUNK, SlurmClient

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(seconds=2)  # between two reads of one snapshot (and after it settled)
GIVE_UP = timedelta(minutes=10)  # from first sight: pending -> unavailable
WINDOW_MARGIN = timedelta(minutes=5)  # sacct's -S before the earliest submit
ROUND_LIMIT = 10 * USAGE_CHUNK  # snapshots read per round (cycle): 10 sacct calls at most
PENDING = SnapshotStatus.PENDING.value
USAGE_COLUMNS = ("state", "exit_code", "partition", "account", "qos", "node_list", "alloc_cpus", "req_mem_mb",
                 "max_rss_kb", "total_cpu_s", "elapsed_s", "timelimit_min", "submit", "eligible", "start", "end")


@dataclass
class SnapshotRound:
    """What one refresh did."""

    due: int = 0
    sacct_calls: int = 0
    completed: int = 0
    unavailable: int = 0
    error: str | None = None


def record_settled(session: Session, row: JobSplit, job: Job, verdict: str | None = None) -> None:
    """Add the split's pending snapshot if it just became final on Slurm (in the caller's transaction).

    `verdict` is the poller's reading ("done", "failed:out_of_memory", ...): on Slurm 22.05 without
    cgroups a memory kill is FAILED 0:9 in sacct, and only the element's stderr, read then, tells."""
    if row.status in FINAL_SPLIT:
        _add(session, row, job, row.status.value, verdict)


def failed_attempt(session: Session, row: JobSplit, job: Job, verdict: str) -> AccountingSnapshot | None:
    """The pending snapshot of a failed attempt about to run again (bridge.resubmission): split status F.

    Made before the split's Slurm ids are cleared and added by the caller once the split is queued
    again, in its transaction: the element ran and used its cores, and an audit counts it. The
    attempt that settles the split gets its own (record_settled). None: the attempt had no element."""
    return _snapshot(session, row, job, SplitStatus.FAILED.value, verdict)


def _add(session: Session, row: JobSplit, job: Job, split_status: str, verdict: str | None) -> None:
    snapshot = _snapshot(session, row, job, split_status, verdict)
    if snapshot is not None:
        session.add(snapshot)


def _snapshot(session: Session, row: JobSplit, job: Job, split_status: str,
              verdict: str | None) -> AccountingSnapshot | None:
    """The attempt's snapshot: BEAT's names, the queue it ran on, what the poll recorded (sacct's replace it)."""
    if not row.slurm_element_id or not row.slurm_job_id:
        return None
    block = job.block or session.get(Block, job.block_id)  # the job may be deleted in this transaction
    if block is None:
        return None
    experiment = block.experiment
    queue = (session.get(Queue, row.queue_id) if row.queue_id is not None else None) or block.queue
    return AccountingSnapshot(
        split_id=row.id, attempt=row.attempt, split_status=split_status, verdict=verdict[:40] if verdict else None,
        experiment_id=experiment.id,
        experiment_name=experiment.name, author=experiment.author, block_name=block.name,
        queue_name=queue.name if queue else None,
        mapping_version=row.mapping_version or (mapping_version(queue) if queue else None),
        algorithm=_algorithm(block), partition=queue.partition if queue else None, submission_tag=row.submission_tag,
        array_job_id=int(row.slurm_job_id), element_id=row.slurm_element_id, split_index=row.split_index,
        status=PENDING,
        first_seen=utcnow(), attempts=0, submit=row.submit_time, start=row.start_time, end=row.end_time,
        state=row.slurm_state, exit_code=row.slurm_exit_code, node_list=row.slurm_node,  # sacct's replace them
    )


def _algorithm(block: Block) -> str | None:
    """The block's "package.module:function" (its command is the declaration's JSON)."""
    try:
        value = json.loads(block.command).get("algorithm")
    except (TypeError, ValueError, AttributeError):
        return None
    return value[:200] if isinstance(value, str) else None


def due(session: Session, now: datetime) -> list[AccountingSnapshot]:
    """Pending snapshots not read (nor settled) within RETRY_AFTER, oldest first, at most ROUND_LIMIT.

    None while the last round is younger than RETRY_AFTER: with splits settling
    on every cycle, rounds still come no more often than that. Both are index
    look-ups (status, last_attempt): a quiet cycle costs two small queries.
    """
    last = func.coalesce(AccountingSnapshot.last_attempt, AccountingSnapshot.first_seen)
    found = list(session.scalars(
        select(AccountingSnapshot).where(AccountingSnapshot.status == PENDING, last <= now - RETRY_AFTER)
        .order_by(AccountingSnapshot.id).limit(ROUND_LIMIT)))
    if found:
        latest = session.scalar(select(func.max(AccountingSnapshot.last_attempt)))
        if latest is not None and latest > now - RETRY_AFTER:
            return []
    return found


def refresh(session: Session, client: SlurmClient, now: datetime | None = None) -> SnapshotRound:
    """One round: read the due snapshots from sacct (one call per USAGE_CHUNK), commit what was read.

    No Slurm call when nothing is due. A failing sacct is logged; its
    snapshots are tried again later, until GIVE_UP.
    """
    now = now or utcnow()
    snapshots = due(session, now)
    found = SnapshotRound(due=len(snapshots))
    for start in range(0, len(snapshots), USAGE_CHUNK):
        chunk = snapshots[start:start + USAGE_CHUNK]
        table = _read(client, chunk, found)
        for snapshot in chunk:
            _update(snapshot, table.lookup(snapshot.element_id) if table else None, now, found)
    if snapshots:
        session.commit()
        log.info("accounting snapshots: %d read, %d complete, %d unavailable, %d sacct calls",
                 found.due, found.completed, found.unavailable, found.sacct_calls)
    return found


def _read(client: SlurmClient, chunk: list[AccountingSnapshot], found: SnapshotRound) -> UsageTable | None:
    """One sacct for the chunk: element ids, or the array id of an element that never started."""
    ids = sorted({s.element_id if s.start is not None else str(s.array_job_id) for s in chunk})
    since = min(s.submit or s.first_seen for s in chunk) - WINDOW_MARGIN
    found.sacct_calls += 1
    try:
        return client.usage(ids, since)
    except CommandError as e:
        log.warning("sacct for %d accounting snapshots failed (tried again later): %s", len(chunk), e)
        found.error = str(e)
        return None


def _update(snapshot: AccountingSnapshot, usage: Usage | None, now: datetime, found: SnapshotRound) -> None:
    snapshot.attempts += 1
    snapshot.last_attempt = now
    if usage is not None:
        for name in USAGE_COLUMNS:
            value = getattr(usage, name)
            if value is not None:
                setattr(snapshot, name, value)
        if usage.settled:
            snapshot.status = SnapshotStatus.COMPLETE.value
            found.completed += 1
            return
    if now - snapshot.first_seen >= GIVE_UP:
        snapshot.status = SnapshotStatus.UNAVAILABLE.value
        found.unavailable += 1
        log.warning("accounting snapshot of split %s (%s) unavailable: sacct had not settled it after %s",
                    snapshot.split_id, snapshot.element_id, GIVE_UP)
