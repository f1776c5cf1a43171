"""The submitter's side of the database: candidates, mirrors, claims and Slurm facts.

Each state-changing function is one locked transaction that commits (see
bridge.history). The submission primitives are what the bridge's submitter
builds on: claim splits with a tag (``mark_splits_submitting``) *before*
sbatch, record the array job id under that tag afterwards
(``record_submission``), or give the claim back when sbatch surely failed
(``release_submission``). A tag without a Slurm id means "being submitted".
Each is one statement per array (bridge.submission_rows, which the submitter
calls directly for plain values); these return the splits loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bridge import mirrors
from bridge.history import guarded_set, identity_of, locked, record, reload, transition
from bridge.models import LIVE_EXPERIMENT, Block, Experiment, Job, JobSplit, Queue, SplitStatus, Worker
from bridge.sacct import slurm_final
from bridge.submission_rows import claim_splits, record_array, release_array

log = logging.getLogger(__name__)

S = SplitStatus


# --- candidates, mirrors -------------------------------------------------------------------


def on_slurm_clause() -> Any:
    """Splits that occupy a slot: claimed, pending on Slurm, running or cancelling (models.on_slurm in SQL)."""
    return or_(JobSplit.status.in_((S.PROCESSING, S.CANCELLING)),
               and_(JobSplit.status == S.QUEUED, JobSplit.submission_tag.is_not(None)))


@dataclass(frozen=True)
class Candidate:
    """A split that could be submitted now, as plain values: what the submitter groups and claims by.

    Plain values, not ORM objects: 1,000s of loaded splits held through the
    submitter's commits would each be expired on every commit.
    """

    id: int
    job_id: int
    split_index: int
    exclude_nodes: str | None


def candidate_splits(session: Session, queue: Queue | int) -> list[Candidate]:
    """Queued, unclaimed splits of the queue, oldest runnable first, per-author limited.

    A split's queue is its block's, or the one a resubmission gave it (JobSplit.queue_id).

    An author may have at most the queue's ``max_slots_per_user`` splits on
    Slurm (claimed, pending or running) at once. Read-only; does not commit.
    """
    qid = identity_of(queue)
    q = session.get(Queue, qid)
    if q is None:
        return []
    on_queue = func.coalesce(JobSplit.queue_id, Block.queue_id) == qid  # a resubmitted split's own queue first
    used = dict(session.execute(
        select(Experiment.author, func.count(JobSplit.id))
        .join(JobSplit.job).join(Job.block).join(Block.experiment)
        .where(on_queue, on_slurm_clause()).group_by(Experiment.author)
    ).all())
    rows = session.execute(
        select(JobSplit.id, JobSplit.job_id, JobSplit.split_index, JobSplit.exclude_nodes, Experiment.author)
        .join(JobSplit.job).join(Job.block).join(Block.experiment)
        .where(on_queue, JobSplit.status == S.QUEUED,
               JobSplit.submission_tag.is_(None), JobSplit.slurm_job_id.is_(None),
               Job.runnable_date.is_not(None), Job.mirror.is_(False),
               Experiment.status.in_(LIVE_EXPERIMENT))
        .order_by(Job.runnable_date, Job.id, JobSplit.split_index)
    ).all()
    chosen = []
    for pk, job_id, split_index, exclude_nodes, author in rows:
        if used.get(author, 0) < q.max_slots_per_user:
            used[author] = used.get(author, 0) + 1
            chosen.append(Candidate(pk, job_id, split_index, exclude_nodes))
    return chosen


def retrieve_candidate_splits_for_queue(session: Session, queue: Queue | int) -> list[JobSplit]:
    """The seed's function: ``candidate_splits`` as loaded splits, in the same order. Read-only."""
    ids = [c.id for c in candidate_splits(session, queue)]
    return _loaded(session, ids, order=False)


def mark_similar_jobs_as_mirror(session: Session, job: Job | int) -> list[Job]:
    """Make other jobs with the same key mirrors of `job`, deleting their unsubmitted splits."""
    with locked(session):
        row = reload(session, Job, job, lock=True)
        marked = mirrors.mark_similar(session, row) if row is not None else []
    return marked




# --- the submitter's primitives (ORM views of bridge.submission_rows) ------------------------


def mark_splits_submitting(
    session: Session, splits: Sequence[JobSplit | int], tag: str, *, mapping_version: str | None = None
) -> list[JobSplit]:
    """Claim queued, unclaimed splits of live experiments with `tag`, before sbatch.

    One guarded UPDATE for all of them (submission_rows.claim_splits), which
    also records the queue mapping version the array renders with; returns
    those this call claimed, loaded (the submitter itself takes the plain values).
    """
    ids = [pk for pk in map(identity_of, splits) if pk is not None]
    claimed = claim_splits(session, ids, tag, mapping_version=mapping_version)
    return _loaded(session, [c.id for c in claimed])


def record_submission(
    session: Session, tag: str, slurm_job_id: str | int, *, offset: int = 0
) -> list[JobSplit]:
    """Record the array job id of the splits claimed with `tag`; element ids are ``<id>_<index>``.

    The array index is ``split_index - offset`` (a job of more splits than
    MaxArraySize goes out as several arrays). One guarded UPDATE
    (submission_rows.record_array). Then the jobs with the same key as a
    submitted job become its mirrors. Returns the splits recorded, loaded.
    """
    return _loaded(session, record_array(session, tag, slurm_job_id, offset=offset))


def release_submission(session: Session, tag: str) -> int:
    """Give back splits claimed with `tag` that sbatch surely did not take; returns how many."""
    return release_array(session, tag)


def _loaded(session: Session, ids: Sequence[int], *, order: bool = True) -> list[JobSplit]:
    """The splits of `ids`, loaded: by job and split index, or (order=False) in the order of `ids`."""
    if not ids:
        return []
    loaded = list(session.scalars(select(JobSplit).where(JobSplit.id.in_(ids))
                                  .order_by(JobSplit.job_id, JobSplit.split_index)))
    if order:
        return loaded
    by_id = {split.id: split for split in loaded}
    return [by_id[pk] for pk in ids if pk in by_id]


def requeue_lost(session: Session, split: JobSplit | int, array_id: str, reason: str) -> bool:
    """Queue again a submitted split whose array Slurm has lost (bridge.reconcile); True if it was.

    Guarded on what was judged: still queued or processing, still under
    `array_id`. Its tag, Slurm ids and facts are cleared in the same guarded
    update, so it is a candidate again and the next cycle claims it under a new
    tag; the state history records it (QUEUED -> QUEUED too, which
    `transition` would not write).
    """
    with locked(session):
        row = reload(session, JobSplit, split)
        if row is None or row.slurm_job_id != array_id:
            return False
        seen = row.status
        moved = transition(session, row, S.QUEUED, {S.QUEUED, S.PROCESSING}, source="reconcile", reason=reason,
                           warn=True, submission_tag=None, slurm_job_id=None, slurm_element_id=None,
                           slurm_state=None, slurm_node=None, slurm_exit_code=None, submit_time=None,
                           start_time=None, end_time=None, start_date=None, worker_id=None)
        if moved and seen == S.QUEUED:
            record(session, row, seen, S.QUEUED, source="reconcile", reason=reason)
        if moved:
            log.info("split %s queued again: %s", row.id, reason)
    return moved


def record_split_node(session: Session, split: JobSplit | int, node: str) -> bool:
    """Record the Slurm node running a split (and its Worker row, if one has that name)."""
    return record_slurm_state(session, split, node=node)


def record_slurm_state(
    session: Session, split: JobSplit | int, *, state: str | None = None,
    node: str | None = None, exit_code: str | None = None,
    start_time: datetime | None = None, end_time: datetime | None = None,
) -> bool:
    """Record what Slurm (squeue or sacct) says of a split (only the fields given); False if the split is gone."""
    with locked(session):
        row = reload(session, JobSplit, split)
        changed = row is not None and set_slurm_facts(
            session, row, state=state, node=node, exit_code=exit_code, start_time=start_time,
            end_time=end_time)
    return changed


def set_slurm_facts(
    session: Session, row: JobSplit, *, state: str | None = None, node: str | None = None,
    exit_code: str | None = None, start_time: datetime | None = None, end_time: datetime | None = None,
) -> bool:
    """record_slurm_state inside the caller's locked transaction: set the fields given (and the
    Worker of the node); True if the row changed."""
    values: dict[str, Any] = {k: v for k, v in {
        "slurm_state": state, "slurm_node": node, "slurm_exit_code": exit_code,
        "start_time": start_time, "end_time": end_time}.items() if v is not None}
    if node is not None:
        worker = session.scalar(select(Worker).where(Worker.name == node))
        values["worker_id"] = worker.id if worker else None
    return bool(values) and guarded_set(session, row, JobSplit.id == row.id, source="slurm", **values)


def element_ids(splits: Sequence[JobSplit]) -> list[str]:
    """The Slurm element ids of the splits that have one (what scancel takes)."""
    return [s.slurm_element_id for s in splits if s.slurm_element_id]


def scancel_targets(session: Session) -> tuple[list[str], list[str]]:
    """What a cycle must stop: element ids of cancelling splits Slurm has not reported final, and the
    tags of cancelling splits whose array id is unknown (claimed, sbatch's outcome not known).

    Asked on every cycle until Slurm reports each final: a lost scancel is sent again.
    """
    rows = session.execute(select(JobSplit.slurm_element_id, JobSplit.slurm_state, JobSplit.submission_tag)
                           .where(JobSplit.status == S.CANCELLING).order_by(JobSplit.id)).all()
    ids = [element for element, state, _ in rows if element and not slurm_final(state)]
    tags = sorted({tag for element, _, tag in rows if element is None and tag is not None})
    return ids, tags
