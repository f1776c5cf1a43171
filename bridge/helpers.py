"""The seed's API (beat.web.backend.helpers), Slurm-native, on SQLAlchemy sessions.

Every function keeps its seed name and meaning; those touching the database
take the session first. Contract: each state-changing function is one
transaction of its own. It commits whatever the session holds, takes the
scheduler lock, reloads what it was given (an instance or an id), applies
guarded updates and commits. An event that does not apply (repeated, late,
out of order, or for a row already deleted) is logged and changes nothing.
The work is done in bridge.scheduling, bridge.submission_db, bridge.outcomes,
bridge.cancelling and bridge.cache.

``assign_splits_to_workers`` is the submitter's (bridge.submit), re-exported
here under its seed name; its database side is in bridge.submission_db
(``mark_splits_submitting``, ``record_submission``, ``record_split_node``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from bridge import cache as cache_module
from bridge import cancelling, element_config, outcomes, scheduling, submission_db
from bridge.history import locked, reload
from bridge.models import Block, Experiment, Job, JobSplit, Queue, Worker
from bridge.submit import assign_splits_to_workers

__all__ = [
    "schedule_experiment", "cancel_experiment", "split_new_jobs",
    "process_newly_cancelled_experiments", "is_cache_complete",
    "retrieve_candidate_splits_for_queue", "get_configuration_for_split", "on_split_started",
    "on_split_done", "on_split_fail", "on_split_cancelled", "mark_similar_jobs_as_mirror",
    "update_dependent_jobs", "assign_splits_to_workers", "assign_split_to_worker",
]


def schedule_experiment(session: Session, experiment: Experiment | int) -> None:
    """Schedule the experiment for execution: one Job per block that must run (P -> S or D)."""
    scheduling.schedule_experiment(session, experiment)


def cancel_experiment(session: Session, experiment: Experiment | int) -> bool:
    """Cancel the experiment: only mark it cancelling (S/R -> C); the scheduler does the rest."""
    return scheduling.cancel_experiment(session, experiment)


def split_new_jobs(
    session: Session, cache_root: str | None = None, max_split_errors: int | None = None
) -> list[JobSplit]:
    """Create the splits of every runnable job not yet split (or mark it a mirror)."""
    return scheduling.split_new_jobs(session, cache_root, max_split_errors)


def process_newly_cancelled_experiments(session: Session) -> list[JobSplit]:
    """Cancel what cancelling experiments have; returns the splits to scancel on Slurm."""
    return cancelling.process_newly_cancelled_experiments(session)


def is_cache_complete(path: str, nb_expected_blocks: int, cache: str | None = None) -> bool:
    """Whether a cache entry is complete: all index/data files there, contiguous, checksums OK.

    `cache` is the cache root, resolved at call time when omitted (see bridge.cache).
    """
    return cache_module.is_cache_complete(path, nb_expected_blocks, cache)


def retrieve_candidate_splits_for_queue(session: Session, queue: Queue | int) -> list[JobSplit]:
    """The queue's splits that could be submitted now (oldest first, per-author limit)."""
    return submission_db.retrieve_candidate_splits_for_queue(session, queue)


def get_configuration_for_split(split: JobSplit, cache_root: str | None = None) -> dict[str, Any]:
    """The configuration an array element runs with: the block's command plus its range."""
    return element_config.get_configuration_for_split(split, cache_root)


def on_split_started(session: Session, split: JobSplit | int) -> bool:
    """Must be called each time a split starts running (True if that changed anything)."""
    return outcomes.on_split_started(session, split)


def on_split_done(
    session: Session, split: JobSplit | int, result: Mapping[str, Any] | None
) -> bool:
    """Must be called each time a split completes successfully (True if that changed anything)."""
    return outcomes.on_split_done(session, split, result)


def on_split_fail(
    session: Session, split: JobSplit | int, result: Mapping[str, Any] | str | None
) -> list[JobSplit]:
    """Must be called each time a split fails; returns the sibling splits to scancel."""
    return outcomes.on_split_fail(session, split, result)


def on_split_cancelled(session: Session, split: JobSplit | int) -> list[JobSplit]:
    """Must be called each time a split is cancelled on Slurm; returns splits to scancel."""
    return outcomes.on_split_cancelled(session, split)


def mark_similar_jobs_as_mirror(session: Session, job: Job | int) -> list[Job]:
    """Mark all similar jobs (same key) as mirrors of `job`, and delete their splits."""
    return submission_db.mark_similar_jobs_as_mirror(session, job)


def update_dependent_jobs(session: Session, job: Job | Block | int) -> list[Job]:
    """Mark the dependent jobs of a done job (or block) runnable; returns them."""
    with locked(session):
        if isinstance(job, Block):
            block = reload(session, Block, job)
        else:
            row = reload(session, Job, job)
            block = row.block if row is not None else None
        made = outcomes.unblock_dependents(session, block) if block is not None else []
    return made


def assign_split_to_worker(session: Session, split: JobSplit | int, worker: Worker | str) -> bool:
    """Record the Slurm node running a split (from squeue/sacct NodeList), and its Worker row.

    In Slurm the node is Slurm's choice: this records it, it does not choose it.
    False when the split is gone.
    """
    return submission_db.record_split_node(session, split, worker.name if isinstance(worker, Worker) else worker)
