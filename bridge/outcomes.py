"""What split outcomes do to jobs, blocks, cached files and experiments.

The poller's events (on_split_started/done/fail/cancelled) end here; the
cancelling of experiments, and how an experiment ends, is in bridge.cancelling.
Each public function is one locked transaction (see bridge.history) and
commits. Rules, as BEAT, made explicit:

* A job completes when all its splits are completed: its cached files become
  cached (statistics summed, stdout/stderr concatenated in split order), its
  block and every mirror's block are done, their dependents become runnable,
  and the job rows are deleted (as BEAT does; Results stay, linked to blocks).
* A failed split fails its block at once: queued siblings not yet given to
  Slurm are cancelled (L), siblings on Slurm become cancelling (K, returned for
  scancel); mirrors fail too; each failed block cancels its experiment's pending
  blocks. A split failing while cancelling (K) was being killed: cancelled.
* A job whose splits ended cancelled (none failed) was stopped for its own
  experiment: blocks of cancelling experiments following it are cancelled,
  but a block of a live (S/R) experiment (a mirror, or the heir of a hand-over
  of splits already being killed) did not ask for it: its job is released (no
  longer a mirror, its ended splits dropped) and split_new_jobs runs it again.
* A split cancelled on Slurm without being asked (not K, experiment not
  cancelling) cannot finish its block: treated as a failure (BEAT had no such
  event; leaving the block waiting forever would hang the experiment).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import wake
from bridge.cancelling import cancel_pending_blocks, settle_experiment
from bridge.history import guarded_set, locked, reload, transition
from bridge.job_rows import cancel_block, delete_job, followers, gone, release_job, stop_splits
from bridge.models import (
    ACTIVE_SPLIT,
    LIVE_EXPERIMENT,
    UNFINISHED_BLOCK,
    Block,
    BlockStatus,
    CacheStatus,
    ExperimentStatus,
    Job,
    JobSplit,
    Result,
    SplitStatus,
    utcnow,
)
from bridge.results import RESULT_FIELDS, as_result, joined, sum_statistics

log = logging.getLogger(__name__)

B, E, S, CF = BlockStatus, ExperimentStatus, SplitStatus, CacheStatus


# --- the poller's events ------------------------------------------------------------------


def on_split_started(session: Session, split: JobSplit | int) -> bool:
    """Mark a queued split processing, and its job, block(s), outputs and experiment(s)."""
    with locked(session):
        row, job = load_split(session, split)
        moved = row is not None and start_split(session, row, job)
    return moved


def on_split_done(session: Session, split: JobSplit | int, result: Mapping[str, Any] | None) -> bool:
    """Record a completed split; when it is the job's last, the job is done (see module)."""
    with locked(session):
        row, job = load_split(session, split)
        moved = row is not None and complete_split(session, row, job, result)
    return moved


def on_split_fail(
    session: Session, split: JobSplit | int, result: Mapping[str, Any] | str | None
) -> list[JobSplit]:
    """Record a failed split and fail its job; returns the sibling splits to scancel."""
    with locked(session):
        row, job = load_split(session, split)
        to_scancel = fail_split(session, row, job, result) if row is not None else []
    return to_scancel


def on_split_cancelled(session: Session, split: JobSplit | int) -> list[JobSplit]:
    """Record a cancelled split; an unrequested cancel fails the job. Returns splits to scancel."""
    with locked(session):
        row, job = load_split(session, split)
        to_scancel = cancel_split(session, row, job) if row is not None else []
    return to_scancel


# --- the same, inside the caller's locked transaction (bridge.slurm_events uses them) -------


def start_split(session: Session, row: JobSplit, job: Job) -> bool:
    """on_split_started's change: QUEUED -> PROCESSING, the job started; True if it moved."""
    moved = transition(session, row, S.PROCESSING, {S.QUEUED}, source="on_split_started", warn=True,
                       start_date=utcnow())
    if moved:
        start_job(session, job)
    return moved


def complete_split(session: Session, row: JobSplit, job: Job, result: Mapping[str, Any] | None) -> bool:
    """on_split_done's change: the split completed, its Result stored, the job settled."""
    seen = row.status
    moved = transition(session, row, S.COMPLETED, ACTIVE_SPLIT, source="on_split_done", warn=True,
                       end_date=utcnow())
    if moved:
        row.result = _store_result(session, job.block, row, result)
        if seen == S.QUEUED:
            start_job(session, job)
        settle_job(session, job, "on_split_done")
    return moved


def fail_split(session: Session, row: JobSplit, job: Job, result: Mapping[str, Any] | str | None
               ) -> list[JobSplit]:
    """on_split_fail's change: failed (or cancelled, if it was being cancelled); siblings to scancel."""
    to_scancel: list[JobSplit] = []
    if row.status == S.CANCELLING:
        if transition(session, row, S.CANCELLED, {S.CANCELLING}, source="on_split_fail",
                      reason="failed while being cancelled", end_date=utcnow()):
            row.result = _store_result(session, job.block, row, result, cancelled=True)
            settle_job(session, job, "on_split_fail")
    elif transition(session, row, S.FAILED, {S.QUEUED, S.PROCESSING}, source="on_split_fail", warn=True,
                    end_date=utcnow()):
        row.result = _store_result(session, job.block, row, result)
        to_scancel = fail_job(session, job, _reason(row.result), "on_split_fail")
        settle_job(session, job, "on_split_fail")
    return to_scancel


def cancel_split(session: Session, row: JobSplit, job: Job) -> list[JobSplit]:
    """on_split_cancelled's change: cancelled; unasked for, it fails the job. Siblings to scancel."""
    to_scancel: list[JobSplit] = []
    seen = row.status
    if transition(session, row, S.CANCELLED, ACTIVE_SPLIT, source="on_split_cancelled", warn=True,
                  end_date=utcnow()):
        experiment = job.block.experiment
        if seen != S.CANCELLING and experiment.status != E.CANCELLING:
            reason = "cancelled on Slurm outside the bridge"
            row.result = _store_result(session, job.block, row, reason, cancelled=True)
            to_scancel = fail_job(session, job, reason, "on_split_cancelled")
        settle_job(session, job, "on_split_cancelled")
    return to_scancel


def load_split(session: Session, split: JobSplit | int) -> tuple[JobSplit | None, Job | None]:
    """The split and its job, reloaded (job row locked); (None, None) if the split is gone."""
    row = reload(session, JobSplit, split)
    if row is None:
        return None, None
    return row, reload(session, Job, row.job_id, lock=True)


def _store_result(
    session: Session, block: Block, split: JobSplit, result: Mapping[str, Any] | str | None,
    *, cancelled: bool = False,
) -> Result:
    """A Result row from BEAT's result dict, or from a plain error string (system error)."""
    result = as_result(result)
    values = {key: result[key] for key in RESULT_FIELDS if result.get(key) is not None}
    row = Result(block_id=block.id, split_index=split.split_index,
                 status=int(result.get("status") or 0), cancelled=cancelled, **values)
    session.add(row)
    return row


def _reason(result: Result) -> str:
    """The one-line why of a failure: user error, system error or stderr's tail."""
    text = result.user_error or result.system_error or (result.stderr or "")[-2000:]
    return text or "split failed"


# --- jobs --------------------------------------------------------------------------------


def start_job(session: Session, job: Job) -> None:
    """The job's first split started: its block(s), outputs and experiment(s) are running."""
    now = utcnow()
    if job.start_date is None:
        guarded_set(session, job, Job.start_date.is_(None), source="start", start_date=now)
    for follower in followers(session, job):
        block = follower.block
        transition(session, block, B.PROCESSING, {B.PENDING}, source="on_split_started",
                   start_date=now)
        for cached in block.outputs:
            transition(session, cached, CF.PROCESSING, {CF.NOT_CACHED}, source="on_split_started")
        experiment = block.experiment
        if experiment.status == E.SCHEDULED:
            transition(session, experiment, E.RUNNING, {E.SCHEDULED}, source="on_split_started",
                       start_date=experiment.start_date or now)


def settle_job(session: Session, job: Job, source: str) -> None:
    """Once no split of `job` is active: complete it, or clean up after failure/cancel."""
    statuses = {S(letter) for letter in session.scalars(  # no need to load every split
        select(JobSplit.status).where(JobSplit.job_id == job.id).distinct())}
    if not statuses or statuses & ACTIVE_SPLIT:
        return
    if statuses == {S.COMPLETED}:
        complete_job(session, job, source)
        return
    if S.FAILED not in statuses:
        for follower in followers(session, job):
            if _live(follower):  # the cancel was not for its experiment: it runs again
                release_job(session, follower, source)
                continue
            cancel_block(session, follower.block, source)
            if follower is not job:
                delete_job(session, follower)
        if _live(job):
            return
    experiment = job.block.experiment
    delete_job(session, job)
    settle_experiment(session, experiment, source)


def _live(job: Job) -> bool:
    """Whether the job's block is unfinished in a scheduled or running experiment that did not
    ask for its cancel: an experiment with a failed block cancels its pending blocks itself."""
    experiment = job.block.experiment
    return (job.block.status in UNFINISHED_BLOCK and experiment.status in LIVE_EXPERIMENT
            and all(block.status != B.FAILED for block in experiment.blocks))


def complete_job(session: Session, job: Job, source: str) -> list[Job]:
    """All splits done (or all outputs already cached): the job and its mirrors are done.

    Returns the jobs made runnable by this completion.
    """
    results = [split.result for split in job.splits if split.result is not None]
    aggregate = {
        "statistics": sum_statistics(r.statistics for r in results) if results else None,
        "stdout": joined(r.stdout for r in results),
        "stderr": joined(r.stderr for r in results),
    }
    for cached in job.block.outputs:
        if results or cached.status != CF.CACHED:
            transition(session, cached, CF.CACHED, set(CF), source=source,
                       error_report=None, **aggregate)
    now = utcnow()
    runnable: list[Job] = []
    for follower in followers(session, job):
        if gone(follower):
            continue
        block = follower.block
        transition(session, block, B.DONE, UNFINISHED_BLOCK, source=source,
                   start_date=block.start_date or now, end_date=now)
        runnable.extend(unblock_dependents(session, block))
        delete_job(session, follower)
        settle_experiment(session, block.experiment, source)
    return runnable


def fail_job(session: Session, job: Job, reason: str, source: str) -> list[JobSplit]:
    """Fail the job's block and its mirrors' blocks; returns the siblings to scancel."""
    to_scancel = stop_splits(session, job, source, reason)
    for follower in followers(session, job):
        if gone(follower):
            continue
        block = follower.block
        transition(session, block, B.FAILED, UNFINISHED_BLOCK, source=source, reason=reason,
                   end_date=utcnow())
        for cached in block.outputs:
            transition(session, cached, CF.NOT_CACHED, {CF.PROCESSING, CF.NOT_CACHED},
                       source=source, reason=reason, error_report=reason)
        if follower is not job:
            delete_job(session, follower)
        to_scancel.extend(cancel_pending_blocks(session, block.experiment, source))
        settle_experiment(session, block.experiment, source)
    if not gone(job) and not job.splits:
        delete_job(session, job)
    return to_scancel


# --- dependents --------------------------------------------------------------------------


def unblock_dependents(session: Session, block: Block) -> list[Job]:
    """Make runnable the jobs of `block`'s dependents whose dependencies are all done."""
    made = []
    for dependent in block.dependents:
        job = dependent.job
        if dependent.status != B.PENDING or job is None or job.runnable_date is not None:
            continue
        if all(upstream.status == B.DONE for upstream in dependent.dependencies):
            if guarded_set(session, job, Job.runnable_date.is_(None), source="dependents",
                           runnable_date=utcnow()):
                log.info("job %s (block %s) is runnable", job.id, dependent.name)
                made.append(job)
    if made:
        wake.notify(session)  # a daemon other than the caller splits them now (bridge.wake)
    return made
