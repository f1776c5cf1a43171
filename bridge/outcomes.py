"""What split outcomes do to jobs, blocks, cached files and experiments, and cancellation.

The poller's events (on_split_started/done/fail/cancelled) and the cancelling
of experiments all end here. Each public function is one locked transaction
(see bridge.history) and commits. Rules, as BEAT, made explicit:

* A job completes when all its splits are completed: its cached files become
  cached (statistics summed, stdout/stderr concatenated in split order), its
  block and every mirror's block are done, their dependents become runnable,
  and the job rows are deleted (as BEAT does; Results stay, linked to blocks).
* A failed split fails its block at once: queued siblings not yet given to
  Slurm are cancelled (L), siblings on Slurm become cancelling (K, returned for
  scancel); mirrors fail too; each failed block cancels its experiment's pending
  blocks. A split failing while cancelling (K) was being killed: cancelled.
* A split cancelled on Slurm without being asked (not K, experiment not
  cancelling) cannot finish its block: treated as a failure (BEAT had no such
  event; leaving the block waiting forever would hang the experiment).
* An experiment ends D (all blocks done) or F (some failed) once no block is
  pending or processing; a cancelling one goes back to P once nothing of it is
  on Slurm any more, its unfinished blocks cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from bridge.history import guarded_set, locked, reload, transition
from bridge.models import (
    Block, BlockStatus, CacheStatus, Experiment, ExperimentStatus, Job, JobSplit, Result,
    SplitStatus, utcnow,
)

log = logging.getLogger(__name__)

B, E, S, CF = BlockStatus, ExperimentStatus, SplitStatus, CacheStatus
ACTIVE = {S.QUEUED, S.PROCESSING, S.CANCELLING}
UNFINISHED_BLOCK = {B.PENDING, B.PROCESSING}
RESULT_FIELDS = ("stdout", "stderr", "user_error", "system_error", "statistics", "timed_out")


# --- the poller's events ------------------------------------------------------------------


def on_split_started(session: Session, split: JobSplit | int) -> bool:
    """Mark a queued split processing, and its job, block(s), outputs and experiment(s)."""
    with locked(session):
        row, job = _load(session, split)
        moved = row is not None and transition(
            session, row, S.PROCESSING, {S.QUEUED}, source="on_split_started", warn=True,
            start_date=utcnow())
        if moved:
            start_job(session, job)
    return moved


def on_split_done(session: Session, split: JobSplit | int, result: Mapping[str, Any] | None) -> bool:
    """Record a completed split; when it is the job's last, the job is done (see module)."""
    with locked(session):
        row, job = _load(session, split)
        seen = row.status if row is not None else None
        moved = row is not None and transition(
            session, row, S.COMPLETED, ACTIVE, source="on_split_done", warn=True,
            end_date=utcnow())
        if moved:
            row.result = _store_result(session, job.block, row, result)
            if seen == S.QUEUED:
                start_job(session, job)
            settle_job(session, job, "on_split_done")
    return moved


def on_split_fail(
    session: Session, split: JobSplit | int, result: Mapping[str, Any] | str | None
) -> list[JobSplit]:
    """Record a failed split and fail its job; returns the sibling splits to scancel."""
    with locked(session):
        row, job = _load(session, split)
        to_scancel: list[JobSplit] = []
        if row is not None and row.status == S.CANCELLING:
            if transition(session, row, S.CANCELLED, {S.CANCELLING}, source="on_split_fail",
                          reason="failed while being cancelled", end_date=utcnow()):
                row.result = _store_result(session, job.block, row, result, cancelled=True)
                settle_job(session, job, "on_split_fail")
        elif row is not None and transition(session, row, S.FAILED, {S.QUEUED, S.PROCESSING},
                                            source="on_split_fail", warn=True, end_date=utcnow()):
            row.result = _store_result(session, job.block, row, result)
            to_scancel = fail_job(session, job, _reason(row.result), "on_split_fail")
            settle_job(session, job, "on_split_fail")
    return to_scancel


def on_split_cancelled(session: Session, split: JobSplit | int) -> list[JobSplit]:
    """Record a cancelled split; an unrequested cancel fails the job. Returns splits to scancel."""
    with locked(session):
        row, job = _load(session, split)
        to_scancel: list[JobSplit] = []
        seen = row.status if row is not None else None
        if row is not None and transition(session, row, S.CANCELLED, ACTIVE,
                                          source="on_split_cancelled", warn=True, end_date=utcnow()):
            experiment = job.block.experiment
            if seen != S.CANCELLING and experiment.status != E.CANCELLING:
                reason = "cancelled on Slurm outside the bridge"
                row.result = _store_result(session, job.block, row, reason, cancelled=True)
                to_scancel = fail_job(session, job, reason, "on_split_cancelled")
            settle_job(session, job, "on_split_cancelled")
    return to_scancel


def _load(session: Session, split: JobSplit | int) -> tuple[JobSplit | None, Job | None]:
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
    if isinstance(result, str) or result is None:
        result = {"status": 1, "system_error": result} if result else {}
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


def mirrors_of(session: Session, job: Job) -> list[Job]:
    """The mirror jobs following `job` (same key), oldest first."""
    return list(session.scalars(
        select(Job).where(Job.key == job.key, Job.mirror.is_(True), Job.id != job.id)
        .order_by(Job.id)
    ))


def start_job(session: Session, job: Job) -> None:
    """The job's first split started: its block(s), outputs and experiment(s) are running."""
    now = utcnow()
    if job.start_date is None:
        guarded_set(session, job, Job.start_date.is_(None), source="start", start_date=now)
    for follower in (job, *mirrors_of(session, job)):
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
    if not statuses or statuses & ACTIVE:
        return
    if statuses == {S.COMPLETED}:
        complete_job(session, job, source)
        return
    if S.FAILED not in statuses:
        for follower in (job, *mirrors_of(session, job)):
            _cancel_block(session, follower.block, source)
            if follower is not job:
                _delete_job(session, follower)
    experiment = job.block.experiment
    _delete_job(session, job)
    settle_experiment(session, experiment, source)


def complete_job(session: Session, job: Job, source: str) -> list[Job]:
    """All splits done (or all outputs already cached): the job and its mirrors are done.

    Returns the jobs made runnable by this completion.
    """
    results = [split.result for split in job.splits if split.result is not None]
    aggregate = {
        "statistics": sum_statistics(r.statistics for r in results) if results else None,
        "stdout": _joined(r.stdout for r in results),
        "stderr": _joined(r.stderr for r in results),
    }
    for cached in job.block.outputs:
        if results or cached.status != CF.CACHED:
            transition(session, cached, CF.CACHED, set(CF), source=source,
                       error_report=None, **aggregate)
    now = utcnow()
    runnable: list[Job] = []
    for follower in (job, *mirrors_of(session, job)):
        if _gone(follower):
            continue
        block = follower.block
        transition(session, block, B.DONE, UNFINISHED_BLOCK, source=source,
                   start_date=block.start_date or now, end_date=now)
        runnable.extend(unblock_dependents(session, block))
        _delete_job(session, follower)
        settle_experiment(session, block.experiment, source)
    return runnable


def fail_job(session: Session, job: Job, reason: str, source: str) -> list[JobSplit]:
    """Fail the job's block and its mirrors' blocks; returns the siblings to scancel."""
    to_scancel = _stop_splits(session, job, source, reason)
    for follower in (job, *mirrors_of(session, job)):
        if _gone(follower):
            continue
        block = follower.block
        transition(session, block, B.FAILED, UNFINISHED_BLOCK, source=source, reason=reason,
                   end_date=utcnow())
        for cached in block.outputs:
            transition(session, cached, CF.NOT_CACHED, {CF.PROCESSING, CF.NOT_CACHED},
                       source=source, reason=reason, error_report=reason)
        if follower is not job:
            _delete_job(session, follower)
        to_scancel.extend(_cancel_pending_blocks(session, block.experiment, source))
        settle_experiment(session, block.experiment, source)
    if not _gone(job) and not job.splits:
        _delete_job(session, job)
    return to_scancel


def _stop_splits(session: Session, job: Job, source: str, reason: str) -> list[JobSplit]:
    """Cancel the job's queued splits; mark those on Slurm cancelling; return those to scancel."""
    to_scancel = []
    for split in job.splits:
        on_slurm = split.submission_tag is not None or split.status == S.PROCESSING
        if split.status == S.QUEUED and not on_slurm:
            transition(session, split, S.CANCELLED, {S.QUEUED}, source=source, reason=reason,
                       end_date=utcnow())
        elif split.status in (S.QUEUED, S.PROCESSING):
            transition(session, split, S.CANCELLING, {S.QUEUED, S.PROCESSING}, source=source,
                       reason=reason)
        if split.status == S.CANCELLING and split.slurm_job_id is not None:
            to_scancel.append(split)
    return to_scancel


def _gone(job: Job) -> bool:
    """Whether the job was deleted earlier in this transaction (a cascade reached it)."""
    state = inspect(job)
    return state.deleted or state.was_deleted


def _delete_job(session: Session, job: Job) -> None:
    """Delete a finished job and its splits (BEAT keeps no job rows once a block is over)."""
    block = job.block
    block.job = None  # delete-orphan: the job and its splits go
    session.flush()


def _joined(texts: Iterable[str | None]) -> str | None:
    """Split outputs concatenated in split order (None if all empty)."""
    parts = [text for text in texts if text]
    return "".join(parts) if parts else None


def sum_statistics(items: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Sum split statistics key by key (nested mappings recursively; numbers added)."""
    total: dict[str, Any] = {}
    for item in items:
        for key, value in (item or {}).items():
            if isinstance(value, Mapping):
                total[key] = sum_statistics([total.get(key) or {}, value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


# --- blocks, dependents, experiments -----------------------------------------------------


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
    return made


def _cancel_block(session: Session, block: Block, source: str) -> None:
    """Mark an unfinished block cancelled and give its outputs back if nobody computes them."""
    transition(session, block, B.CANCELLED, UNFINISHED_BLOCK, source=source)
    for cached in block.outputs:
        busy = any(other.status == B.PROCESSING for other in cached.blocks if other is not block)
        if cached.status == CF.PROCESSING and not busy:
            transition(session, cached, CF.NOT_CACHED, {CF.PROCESSING}, source=source)


def cancel_job(session: Session, job: Job, source: str) -> list[JobSplit]:
    """Stop a job for a cancelled/failed experiment; returns its splits to scancel.

    A mirror is simply dropped. An original with a mirror in a live experiment
    hands its splits (and so its Slurm work) to the oldest such mirror instead
    of being killed. Otherwise queued splits are cancelled, those on Slurm are
    marked cancelling; the block is cancelled once none is left on Slurm.
    """
    block = job.block
    heir = None if job.mirror else _heir(session, job)
    if heir is not None:
        for split in list(job.splits):
            split.job = heir
        session.flush()
        guarded_set(session, heir, Job.mirror.is_(True), source="handoff", mirror=False,
                    start_date=job.start_date)
        log.info("job %s hands its splits to mirror job %s", job.id, heir.id)
    to_scancel = [] if job.mirror or heir else _stop_splits(session, job, source, "cancelled")
    if not any(split.status in ACTIVE for split in job.splits):
        _cancel_block(session, block, source)
        _delete_job(session, job)
    return to_scancel


def _heir(session: Session, job: Job) -> Job | None:
    """The oldest mirror of `job` in a live experiment, to take over its splits."""
    live = (E.SCHEDULED, E.RUNNING)
    for mirror in mirrors_of(session, job):
        if mirror.block.experiment.status in live and mirror.block.status in UNFINISHED_BLOCK:
            return mirror
    return None


def _cancel_pending_blocks(session: Session, experiment: Experiment, source: str) -> list[JobSplit]:
    """Cancel the experiment's pending (N) blocks; returns their splits to scancel."""
    to_scancel = []
    for block in experiment.blocks:
        if block.status != B.PENDING:
            continue
        if block.job is not None:
            to_scancel.extend(cancel_job(session, block.job, source))
        else:
            transition(session, block, B.CANCELLED, {B.PENDING}, source=source)
    return to_scancel


def _on_slurm(experiment: Experiment) -> bool:
    """Whether any split of the experiment is (or may be) on Slurm."""
    return any(
        split.status in (S.PROCESSING, S.CANCELLING)
        or (split.status == S.QUEUED and split.submission_tag is not None)
        for block in experiment.blocks if block.job is not None for split in block.job.splits
    )


def settle_experiment(session: Session, experiment: Experiment, source: str) -> None:
    """End the experiment (D/F) when no block is unfinished; end a cancel (back to P)."""
    if experiment.status in (E.SCHEDULED, E.RUNNING):
        if any(block.status in UNFINISHED_BLOCK for block in experiment.blocks):
            return
        done = all(block.status == B.DONE for block in experiment.blocks)
        transition(session, experiment, E.DONE if done else E.FAILED, {E.SCHEDULED, E.RUNNING},
                   source=source, end_date=utcnow())
    elif experiment.status == E.CANCELLING and not _on_slurm(experiment):
        for block in experiment.blocks:
            if block.status in UNFINISHED_BLOCK and block.job is not None:
                cancel_job(session, block.job, source)
            elif block.status in UNFINISHED_BLOCK:
                _cancel_block(session, block, source)
        transition(session, experiment, E.PENDING, {E.CANCELLING}, source=source,
                   reason="cancellation finished")


def process_newly_cancelled_experiments(session: Session) -> list[JobSplit]:
    """Cancel what cancelling experiments have; returns every split of theirs to scancel.

    Splits already cancelling from an earlier cycle are returned again until
    Slurm reports them cancelled: scancel is idempotent, and a lost one is retried.
    """
    with locked(session):
        to_scancel: list[JobSplit] = []
        cancelling = session.scalars(
            select(Experiment).where(Experiment.status == E.CANCELLING).order_by(Experiment.id)
        ).all()
        for experiment in cancelling:
            for block in experiment.blocks:
                if block.job is not None and block.status in UNFINISHED_BLOCK:
                    cancel_job(session, block.job, "process_newly_cancelled_experiments")
            settle_experiment(session, experiment, "process_newly_cancelled_experiments")
            to_scancel.extend(
                split for block in experiment.blocks if block.job is not None
                for split in block.job.splits
                if split.status == S.CANCELLING and split.slurm_job_id is not None
            )
    return to_scancel
