"""Steps on a job's rows that outcomes and cancelling share.

Each runs inside the caller's locked transaction (see bridge.history) and
never commits: finding a job's mirrors, stopping its splits, cancelling its
block, releasing it to run again, deleting it once its block is over.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from bridge.history import guarded_set, transition
from bridge.models import (
    UNFINISHED_BLOCK,
    Block,
    BlockStatus,
    CacheStatus,
    Job,
    JobSplit,
    SplitStatus,
    on_slurm,
    utcnow,
)

log = logging.getLogger(__name__)

B, S, CF = BlockStatus, SplitStatus, CacheStatus


def mirrors_of(session: Session, job: Job) -> list[Job]:
    """The mirror jobs following `job` (same key), oldest first."""
    return list(session.scalars(
        select(Job).where(Job.key == job.key, Job.mirror.is_(True), Job.id != job.id)
        .order_by(Job.id)
    ))


def followers(session: Session, job: Job) -> list[Job]:
    """`job` and its mirrors, oldest first: every job an outcome of `job` applies to."""
    return [job, *mirrors_of(session, job)]


def stop_splits(session: Session, job: Job, source: str, reason: str) -> list[JobSplit]:
    """Cancel the job's queued splits; mark those on Slurm cancelling; return those to scancel."""
    to_scancel = []
    for split in job.splits:
        if split.status == S.QUEUED and not on_slurm(split.status, split.submission_tag):
            transition(session, split, S.CANCELLED, {S.QUEUED}, source=source, reason=reason,
                       end_date=utcnow())
        elif split.status in (S.QUEUED, S.PROCESSING):
            transition(session, split, S.CANCELLING, {S.QUEUED, S.PROCESSING}, source=source,
                       reason=reason)
        if split.status == S.CANCELLING and split.slurm_job_id is not None:
            to_scancel.append(split)
    return to_scancel


def gone(job: Job) -> bool:
    """Whether the job was deleted earlier in this transaction (a cascade reached it)."""
    state = inspect(job)
    return state.deleted or state.was_deleted


def delete_job(session: Session, job: Job) -> None:
    """Delete a finished job and its splits (BEAT keeps no job rows once a block is over)."""
    block = job.block
    block.job = None  # delete-orphan: the job and its splits go
    session.flush()


def release_job(session: Session, job: Job, source: str) -> None:
    """Make `job` compute its key afresh: its ended splits dropped, no longer a mirror.

    For a job of a live experiment whose work was cancelled for another
    experiment: split_new_jobs splits it again (or mirrors it to a live original).
    """
    job.splits.clear()  # delete-orphan: the ended splits go (their Results stay)
    session.flush()
    guarded_set(session, job, Job.mirror.is_(True), source=source, mirror=False)
    log.info("job %s (block %s) released: its work was cancelled for another experiment",
             job.id, job.block.name)


def cancel_block(session: Session, block: Block, source: str) -> None:
    """Mark an unfinished block cancelled and give its outputs back if nobody computes them."""
    transition(session, block, B.CANCELLED, UNFINISHED_BLOCK, source=source)
    for cached in block.outputs:
        busy = any(other.status == B.PROCESSING for other in cached.blocks if other is not block)
        if cached.status == CF.PROCESSING and not busy:
            transition(session, cached, CF.NOT_CACHED, {CF.PROCESSING}, source=source)
