"""Scheduling on the database: experiments to jobs, jobs to splits.

Each state-changing function is one locked transaction that commits (see
bridge.history). What the submitter needs from the database (candidates,
mirrors, claiming splits and recording sbatch's answer) is in
bridge.submission_db.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, inspect, select
from sqlalchemy.orm import Session

from bridge import mirrors, outcomes, strikes, wake
from bridge.cache import CacheError, read_index, split_ranges
from bridge.errors import BridgeError
from bridge.hashing import job_key
from bridge.history import guarded_set, locked, record, reload, transition
from bridge.models import (
    LIVE_EXPERIMENT,
    UNFINISHED_BLOCK,
    Block,
    BlockStatus,
    CacheStatus,
    Environment,
    Experiment,
    ExperimentStatus,
    Job,
    JobSplit,
    Queue,
    Result,
    SplitStatus,
    utcnow,
)

log = logging.getLogger(__name__)

B, E, S = BlockStatus, ExperimentStatus, SplitStatus
MAX_SPLIT_ERRORS = 5  # default limit of missing-index retries; read at call time


class SchedulingError(BridgeError):
    """The experiment cannot be scheduled."""


# --- queues and environments (tests, `queues sync`) --------------------------------------


def upsert_environment(session: Session, name: str, version: str) -> Environment:
    """The environment (name, version), created if missing. Flushes; the caller commits."""
    found = session.scalar(select(Environment).where(
        Environment.name == name, Environment.version == version))
    if found is None:
        found = Environment(name=name, version=version)
        session.add(found)
        session.flush()
    return found


def upsert_queue(
    session: Session, *, name: str, partition: str, memory_limit: int, time_limit: int,
    cores_per_slot: int = 1, max_slots_per_user: int = 1,
    environments: Iterable[tuple[str, str]] = (),
) -> Queue:
    """Create or update a queue and its environments. Flushes; the caller commits."""
    queue = session.scalar(select(Queue).where(Queue.name == name)) or Queue(name=name)
    queue.partition, queue.memory_limit, queue.time_limit = partition, memory_limit, time_limit
    queue.cores_per_slot, queue.max_slots_per_user = cores_per_slot, max_slots_per_user
    queue.environments = [upsert_environment(session, n, v) for n, v in environments]
    session.add(queue)
    session.flush()
    return queue


# --- experiments ---------------------------------------------------------------------------


def schedule_experiment(session: Session, experiment: Experiment | int) -> None:
    """Give every block that must run a job; the experiment becomes S (or D if all cached).

    Only from P. A block without a queue or environment is a SchedulingError
    naming it, and nothing changes. Blocks whose outputs are all cached are done
    at once; a job is runnable now when its dependencies are all done.
    """
    with locked(session):
        exp = reload(session, Experiment, experiment, lock=True)
        if exp is None or exp.status != E.PENDING:
            if exp is not None:
                log.warning("experiment %s is %s, not P: not scheduled", exp.id, exp.status.value)
            return
        _check_schedulable(exp)
        pending = any([_schedule_block(session, block) for block in exp.blocks])
        now = utcnow()
        transition(session, exp, E.SCHEDULED if pending else E.DONE, {E.PENDING},
                   source="schedule_experiment", start_date=None if pending else now,
                   end_date=None if pending else now)
        if pending:
            wake.notify(session)  # the idle daemon splits and submits it now (bridge.wake)


def _check_schedulable(exp: Experiment) -> None:
    """SchedulingError naming the first block without a queue or an environment."""
    for block in exp.blocks:
        for what in ("queue", "environment"):
            if getattr(block, what) is None:
                raise SchedulingError(
                    f"experiment {exp.fullname}, block {block.name!r}: no {what} (deleted since "
                    "the experiment was declared?); re-declare it with an existing one")


def _schedule_block(session: Session, block: Block) -> bool:
    """Skip a fully cached block (done) or give it a job; True if it has to run."""
    now = utcnow()
    if block.outputs and all(c.status == CacheStatus.CACHED for c in block.outputs):
        transition(session, block, B.DONE, set(B), source="schedule_experiment",
                   reason="outputs cached", start_date=now, end_date=now)
        return False
    transition(session, block, B.PENDING, set(B), source="schedule_experiment",
               start_date=None, end_date=None)
    runnable = all(upstream.status == B.DONE for upstream in block.dependencies)
    block.job = Job(key=job_key(c.hash for c in block.outputs),
                    runnable_date=now if runnable else None, split_errors=0, mirror=False)
    session.flush()
    return True


def cancel_experiment(session: Session, experiment: Experiment | int) -> bool:
    """Mark a scheduled or running experiment cancelling (C); nothing else. True if it moved."""
    with locked(session):
        exp = reload(session, Experiment, experiment, lock=True)
        moved = exp is not None and transition(
            session, exp, E.CANCELLING, LIVE_EXPERIMENT, source="cancel_experiment", warn=True)
        if moved:
            wake.notify(session)  # the daemon scancels it now (bridge.wake)
    return moved


# --- splitting -----------------------------------------------------------------------------


def split_new_jobs(
    session: Session, cache_root: str | None = None, max_split_errors: int | None = None
) -> list[JobSplit]:
    """Split every runnable job without splits (or make it a mirror); returns new splits.

    A job whose outputs got cached meanwhile is done at once, which can make
    more jobs runnable: those are processed in the same call. A missing
    upstream index counts a split error and is retried next call; past
    `max_split_errors` (default MAX_SPLIT_ERRORS) the block fails.
    """
    if session.scalar(_unsplit(select(Job.id)).limit(1)) is None:
        session.commit()  # what the session held, as locked() would; the usual cycle: no write transaction
        return []
    with locked(session):
        limit = MAX_SPLIT_ERRORS if max_split_errors is None else max_split_errors
        created: list[JobSplit] = []
        jobs = list(session.scalars(_unsplit(select(Job)).order_by(Job.runnable_date, Job.id)))
        while jobs:
            more: list[Job] = []
            for job in jobs:
                more.extend(_split_guarded(session, job, cache_root, limit, created))
            jobs = more
    return created


def _unsplit(query: Select[Any]) -> Select[Any]:
    """`query` limited to runnable, non-mirror jobs of live experiments that have no splits yet."""
    return (query.join(Job.block).join(Block.experiment)
            .where(Job.runnable_date.is_not(None), Job.mirror.is_(False), ~Job.splits.any(),
                   Experiment.status.in_(LIVE_EXPERIMENT)))


def _split_guarded(
    session: Session, job: Job, root: str | None, limit: int, created: list[JobSplit]
) -> list[Job]:
    """_split_job in a savepoint: an error from the job's own data is its strike (bridge.strikes), not the cycle's."""
    job_id = job.id
    mine: list[JobSplit] = []
    try:
        with session.begin_nested():
            made = _split_job(session, job, root, limit, mine)
    except Exception as e:
        if not strikes.is_job_data_error(e):
            raise
        job = session.get(Job, job_id)
        name = job.block.name if job is not None else "?"
        reason = strikes.strike(job_id, f"block {name!r} (job {job_id}) cannot be split", e)
        if reason is not None and job is not None:
            session.add(Result(block_id=job.block.id, status=1, system_error=reason))
            outcomes.fail_job(session, job, reason, "split_new_jobs")
        return []
    strikes.clear(job_id)
    created.extend(mine)
    return made


def _split_job(
    session: Session, job: Job, root: str | None, limit: int, created: list[JobSplit]
) -> list[Job]:
    """Split one job, or skip or mirror it; returns the jobs this made runnable."""
    state = inspect(job)
    if state.deleted or state.was_deleted or job.mirror or job.splits:
        return []  # an earlier job of this call failed its experiment, or mirrored this one
    block = job.block
    if block.experiment.status not in LIVE_EXPERIMENT or block.status not in UNFINISHED_BLOCK:
        return []
    if block.outputs and all(c.status == CacheStatus.CACHED for c in block.outputs):
        log.info("block %s: outputs cached meanwhile, done without running", block.name)
        return outcomes.complete_job(session, job, "split_new_jobs")
    original = mirrors.original_of(session, job)
    if original is not None and mirrors.follow(session, job, original):
        mirrors.started(session, original)
        return []
    ranges = _ranges(block, root)
    if ranges is None:
        _split_error(session, job, limit)
        return []
    splits = [JobSplit(job=job, split_index=index, start_index=start, end_index=end,
                       status=S.QUEUED, cache_errors=0)
              for index, (start, end) in enumerate(ranges)]
    session.add_all(splits)
    session.flush()
    for split in splits:
        record(session, split, None, S.QUEUED, source="split_new_jobs")
    created.extend(splits)
    log.info("job %s (block %s): %d split(s)", job.id, block.name, len(ranges))
    return []


def _ranges(block: Block, root: str | None) -> list[tuple[int | None, int | None]] | None:
    """The split ranges of a block; [(None, None)] when unsplit; None if an index is missing."""
    inputs = json.loads(block.command).get("inputs", {})
    if block.required_slots == 1 or not inputs:
        return [(None, None)]
    indexes, sizes = [], []
    for name, entry in sorted(inputs.items()):
        if "dataset" in entry:
            sizes.append(entry["size"])  # one data block per unit, cut arithmetically (never a list per unit)
            continue
        try:
            indexes.append(read_index(entry["path"], root))
        except CacheError as e:
            log.warning("block %s, input %s: %s", block.name, name, e)
            return None
    return split_ranges(indexes, block.required_slots, dataset_sizes=sizes) or None


def _split_error(session: Session, job: Job, limit: int) -> None:
    """Count one split error; past the limit, fail the block."""
    count = job.split_errors + 1
    guarded_set(session, job, Job.split_errors == job.split_errors, source="split_error",
                split_errors=count)
    if count <= limit:
        return
    message = (f"block {job.block.name!r}: the data index of its inputs could not be read "
               f"after {count} attempts")
    session.add(Result(block_id=job.block.id, status=1, system_error=message))
    outcomes.fail_job(session, job, message, "split_new_jobs")
