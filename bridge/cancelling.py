"""Cancelling jobs and experiments, and settling experiments.

``process_newly_cancelled_experiments`` is one locked transaction that commits
(see bridge.history); the others run inside their caller's (bridge.outcomes).
Rules, as BEAT, made explicit:

* An experiment ends D (all blocks done) or F (some failed) once no block is
  pending or processing; a cancelling one goes back to P once nothing of it is
  on Slurm any more, its unfinished blocks cancelled.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.history import guarded_set, locked, transition
from bridge.job_rows import cancel_block, delete_job, mirrors_of, stop_splits
from bridge.models import (
    ACTIVE_SPLIT,
    LIVE_EXPERIMENT,
    UNFINISHED_BLOCK,
    BlockStatus,
    Experiment,
    ExperimentStatus,
    Job,
    JobSplit,
    SplitStatus,
    on_slurm,
    utcnow,
)

log = logging.getLogger(__name__)

B, E, S = BlockStatus, ExperimentStatus, SplitStatus


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
    to_scancel = [] if job.mirror or heir else stop_splits(session, job, source, "cancelled")
    if not any(split.status in ACTIVE_SPLIT for split in job.splits):
        cancel_block(session, block, source)
        delete_job(session, job)
    return to_scancel


def _heir(session: Session, job: Job) -> Job | None:
    """The oldest mirror of `job` in a live experiment, to take over its splits."""
    for mirror in mirrors_of(session, job):
        if mirror.block.experiment.status in LIVE_EXPERIMENT and mirror.block.status in UNFINISHED_BLOCK:
            return mirror
    return None


def cancel_pending_blocks(session: Session, experiment: Experiment, source: str) -> list[JobSplit]:
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
        on_slurm(split.status, split.submission_tag)
        for block in experiment.blocks if block.job is not None for split in block.job.splits
    )


def settle_experiment(session: Session, experiment: Experiment, source: str) -> None:
    """End the experiment (D/F) when no block is unfinished; end a cancel (back to P)."""
    if experiment.status in LIVE_EXPERIMENT:
        if any(block.status in UNFINISHED_BLOCK for block in experiment.blocks):
            return
        done = all(block.status == B.DONE for block in experiment.blocks)
        transition(session, experiment, E.DONE if done else E.FAILED, LIVE_EXPERIMENT,
                   source=source, end_date=utcnow())
    elif experiment.status == E.CANCELLING and not _on_slurm(experiment):
        for block in experiment.blocks:
            if block.status in UNFINISHED_BLOCK and block.job is not None:
                cancel_job(session, block.job, source)
            elif block.status in UNFINISHED_BLOCK:
                cancel_block(session, block, source)
        transition(session, experiment, E.PENDING, {E.CANCELLING}, source=source,
                   reason="cancellation finished")


def process_newly_cancelled_experiments(session: Session) -> list[JobSplit]:
    """Cancel what cancelling experiments have; returns every split of theirs to scancel.

    Splits already cancelling from an earlier cycle are returned again until
    Slurm reports them cancelled: scancel is idempotent, and a lost one is retried.
    """
    if session.scalar(select(Experiment.id).where(Experiment.status == E.CANCELLING).limit(1)) is None:
        session.commit()  # what the session held, as locked() would; the usual cycle: no write transaction
        return []
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
