"""The database side of queue mapping versions: stored settings, a job's fixed version, live uses.

A job's version is fixed by its first array (one guarded UPDATE, NULL ->
version), and every later array of the job renders with the settings stored
under it, whatever a sync did since: a mapping edit never re-routes work in
flight. New jobs take the queue row's current settings.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bridge.history import locked
from bridge.models import FINAL_EXPERIMENT, UNFINISHED_BLOCK, Block, Experiment, Job, Queue, QueueVersion
from bridge.queue_settings import QueueSettings, from_row, mapping_version
from bridge.queue_sync import Use

log = logging.getLogger(__name__)


def store_version(session: Session, queue_name: str, settings: QueueSettings) -> str:
    """Keep the settings under their version (once: a version is a hash of them); the version. Flushes."""
    version = mapping_version(settings)
    if session.get(QueueVersion, version) is None:
        session.add(QueueVersion(version=version, queue_name=queue_name, settings=settings.to_json()))
        session.flush()
    return version


def settings_for_job(session: Session, job_id: int, queue: Queue) -> tuple[str, QueueSettings]:
    """The version and settings the job's arrays render with: fixed by its first array, kept after.

    The first array fixes the queue row's current settings on the job (in one
    locked transaction that also stores them); later arrays read them back. A
    split resubmitted to another queue (bridge.resubmission) renders with that
    queue's current settings: the job's version is its block's queue's.
    """
    current = from_row(queue)
    job = session.get(Job, job_id)
    if job is not None and job.block.queue_id != queue.id:  # a resubmission to another queue: that queue's now
        with locked(session):
            return store_version(session, queue.name, current), current
    if job is not None and job.mapping_version is None:
        with locked(session):
            version = store_version(session, queue.name, current)
            session.execute(update(Job).where(Job.id == job_id, Job.mapping_version.is_(None))
                            .values(mapping_version=version).execution_options(synchronize_session=False))
        job = session.get(Job, job_id)
    fixed = job.mapping_version if job is not None else None
    if fixed is None or fixed == mapping_version(current):
        return mapping_version(current), current
    stored = session.get(QueueVersion, fixed)
    if stored is None:  # only a hand-edited database loses one: say so, render what the row says
        log.warning("job %s was first submitted with queue %s version %s, which is not stored: "
                    "rendering the queue's current settings", job_id, queue.name, fixed)
        return mapping_version(current), current
    return fixed, QueueSettings.from_json(stored.settings)


def live_uses(session: Session) -> dict[str, list[Use]]:
    """Per queue name, the blocks not final of experiments not final on it (BEAT's "in use")."""
    rows = session.execute(
        select(Queue.name, Experiment.id, Experiment.author, Experiment.name, Block.name, Block.status, Job.id)
        .join(Block, Block.queue_id == Queue.id).join(Block.experiment).outerjoin(Job, Job.block_id == Block.id)
        .where(Block.status.in_(UNFINISHED_BLOCK), Experiment.status.not_in(FINAL_EXPERIMENT))
        .order_by(Experiment.id, Block.execution_order, Block.id)).all()
    uses: dict[str, list[Use]] = defaultdict(list)
    for queue, exp_id, author, name, block, status, job in rows:
        uses[queue].append(Use(exp_id, f"{author}/{name}", block, status.value, job))
    return dict(uses)
