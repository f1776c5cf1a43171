"""The mirror rule, once: two jobs with the same key compute the same thing, so one runs.

A job may follow another (become its *mirror*: no splits of its own, it takes
the original's outcome) when it has nothing on Slurm and nothing finished: no
split of it is claimed, submitted, running or ended. The original is the oldest
other non-mirror job with that key whose block is unfinished and which has
splits queued or running. Both directions use this rule: a new job meeting an
original (split_new_jobs), and an original just submitted meeting jobs that
wait (record_submission, mark_similar_jobs_as_mirror). Runs inside the
caller's locked transaction (bridge.history); never commits.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import outcomes
from bridge.history import guarded_set
from bridge.models import UNFINISHED_BLOCK, Block, Job, JobSplit, SplitStatus

log = logging.getLogger(__name__)

S = SplitStatus


def may_follow(job: Job) -> bool:
    """Whether `job` may become a mirror: not one already, and every split (if any) queued, unclaimed."""
    return not job.mirror and all(s.status == S.QUEUED and s.submission_tag is None for s in job.splits)


def original_of(session: Session, job: Job) -> Job | None:
    """The oldest other live job computing the same key (with queued or running splits), if any."""
    return session.scalar(
        select(Job).join(Job.block)
        .where(Job.key == job.key, Job.id != job.id, Job.mirror.is_(False),
               Block.status.in_(UNFINISHED_BLOCK),
               Job.splits.any(JobSplit.status.in_((S.QUEUED, S.PROCESSING))))
        .order_by(Job.id).limit(1)
    )


def follow(session: Session, job: Job, original: Job) -> bool:
    """Make `job` a mirror of `original` (its unsubmitted splits dropped); False if it may not."""
    if not may_follow(job):
        log.info("job %s has splits on Slurm or ended: not made a mirror of job %s", job.id, original.id)
        return False
    job.splits.clear()  # delete-orphan: only queued, unclaimed splits can be here
    session.flush()
    guarded_set(session, job, Job.mirror.is_(False), source="mirror", mirror=True)
    log.info("job %s (block %s) mirrors job %s", job.id, job.block.name, original.id)
    return True


def mark_similar(session: Session, job: Job) -> list[Job]:
    """Make the runnable jobs with `job`'s key its mirrors where the rule allows; returns them."""
    if job.mirror:
        log.warning("job %s is itself a mirror: no jobs marked", job.id)
        return []
    others = session.scalars(select(Job).where(  # not-yet-runnable jobs wait their turn
        Job.key == job.key, Job.id != job.id, Job.mirror.is_(False),
        Job.runnable_date.is_not(None)).order_by(Job.id)).all()
    marked = [other for other in others if follow(session, other, job)]
    if marked:
        started(session, job)
    return marked


def started(session: Session, original: Job) -> None:
    """An original already running starts its new mirrors' blocks and experiments too."""
    if original.start_date is not None:
        outcomes.start_job(session, original)
