"""One array's rows in one statement each: claim before sbatch, record after, release when it surely failed.

The submitter's hot path at scale (issue 12): an array of 1,000 splits costs
one guarded ``UPDATE ... RETURNING`` to claim and one to record, never a
statement or an ORM load per split. What comes back are plain values
(``ClaimedSplit``), so a commit expiring the session's objects costs nothing
afterwards. Each function is one locked transaction that commits
(bridge.history); the guards are those of BEAT's exactly-once rule: only
queued, unclaimed, unrecorded splits of live, non-mirror jobs are claimed, and
only splits still under the tag are recorded or released. ``RETURNING`` names
exactly the rows this statement changed, on SQLite (3.35+) and PostgreSQL
alike, so two claimers racing never both get a split.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import String, and_, cast, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from bridge import mirrors, outcomes
from bridge.history import locked, transition
from bridge.models import LIVE_EXPERIMENT, Block, Experiment, Job, JobSplit, SplitStatus, utcnow

log = logging.getLogger(__name__)

S = SplitStatus


@dataclass(frozen=True, order=True)
class ClaimedSplit:
    """What the submitter needs of one claimed split (ordered by job, then split index)."""

    job_id: int
    split_index: int
    id: int
    start_index: int | None
    end_index: int | None


def claim_splits(session: Session, split_ids: Sequence[int], tag: str, *,
                 mapping_version: str | None = None) -> list[ClaimedSplit]:
    """Claim the queued, unclaimed splits of live jobs among `split_ids` with `tag`, before sbatch.

    One guarded ``UPDATE ... RETURNING``, which also records the queue mapping
    version the array renders with; returns those this call claimed, by job and
    split index.
    """
    live_jobs = (select(Job.id).join(Job.block).join(Block.experiment)
                 .where(Job.mirror.is_(False), Experiment.status.in_(LIVE_EXPERIMENT)))
    with locked(session):
        rows = session.execute(
            update(JobSplit).where(
                JobSplit.id.in_(split_ids), JobSplit.status == S.QUEUED,
                JobSplit.submission_tag.is_(None), JobSplit.slurm_job_id.is_(None),
                JobSplit.job_id.in_(live_jobs))
            .values(submission_tag=tag, mapping_version=mapping_version)
            .returning(JobSplit.job_id, JobSplit.split_index, JobSplit.id, JobSplit.start_index,
                       JobSplit.end_index)
            .execution_options(synchronize_session=False)).all()
    claimed = sorted(ClaimedSplit(*row) for row in rows)
    if len(claimed) < len(split_ids):
        log.info("tag %s claimed %d of %d splits (others taken, gone or not queued)",
                 tag, len(claimed), len(split_ids))
    return claimed


def record_array(session: Session, tag: str, slurm_job_id: str | int, *, offset: int = 0) -> list[int]:
    """Record the array job id on the splits still claimed with `tag`; their ids, by split index.

    Element ids are ``<id>_<split_index - offset>`` (a job of more splits than
    MaxArraySize goes out as several arrays), set by expression in the one
    guarded ``UPDATE ... RETURNING``. Then the jobs with the same key as a
    submitted job become its mirrors.
    """
    index = cast(JobSplit.split_index - offset, String)
    with locked(session):
        rows = session.execute(
            update(JobSplit).where(JobSplit.submission_tag == tag, JobSplit.slurm_job_id.is_(None))
            .values(slurm_job_id=str(slurm_job_id), submit_time=utcnow(),
                    slurm_element_id=literal(f"{slurm_job_id}_") + index)
            .returning(JobSplit.job_id, JobSplit.split_index, JobSplit.id)
            .execution_options(synchronize_session=False)).all()
        _expire(session, (row.id for row in rows))
        for job_id in sorted({row.job_id for row in rows}):
            job = session.get(Job, job_id)
            if job is not None:
                mirrors.mark_similar(session, job)
    ids = [row.id for row in sorted(rows)]
    log.info("tag %s recorded as Slurm job %s: splits %s", tag, slurm_job_id, ids)
    return ids


def release_array(session: Session, tag: str) -> int:
    """Give back the splits claimed with `tag` that sbatch surely did not take; returns how many.

    One guarded UPDATE for the claimed ones; a split cancelled while claimed
    (K) ends cancelled instead, one transition each (rare: a cancel racing a
    failed sbatch).
    """
    unrecorded = and_(JobSplit.submission_tag == tag, JobSplit.slurm_job_id.is_(None))
    with locked(session):
        cancelling = list(session.scalars(select(JobSplit).where(unrecorded, JobSplit.status == S.CANCELLING)))
        for split in cancelling:
            transition(session, split, S.CANCELLED, {S.CANCELLING}, source="release_submission",
                       submission_tag=None)
            outcomes.settle_job(session, split.job, "release_submission")
        released = session.execute(
            update(JobSplit).where(unrecorded, JobSplit.status != S.CANCELLING).values(submission_tag=None)
            .returning(JobSplit.id).execution_options(synchronize_session=False)).scalars().all()
        _expire(session, released)
    return len(cancelling) + len(released)


def _expire(session: Session, ids: Iterable[int]) -> None:
    """Expire the session's loaded instances of these splits (a bulk UPDATE left them stale).

    Only for a session that keeps its objects over a commit: the commit that
    ends the helper expires everything otherwise.
    """
    if session.expire_on_commit:
        return
    for pk in ids:
        instance = session.identity_map.get(identity_key(JobSplit, pk))
        if instance is not None:
            session.expire(instance)
