"""Scheduling on the database: experiments to jobs, jobs to splits, splits to Slurm.

Each state-changing function is one locked transaction that commits (see
bridge.history). The submission primitives are what the bridge's submitter
builds on: claim splits with a tag (``mark_splits_submitting``) *before*
sbatch, record the array job id under that tag afterwards
(``record_submission``), or give the claim back when sbatch surely failed
(``release_submission``). A tag without a Slurm id means "being submitted".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, func, inspect, literal, or_, select, update
from sqlalchemy.orm import Session

from bridge import outcomes
from bridge.cache import CacheError, read_index, split_ranges
from bridge.cache import cache_root as resolve_cache_root
from bridge.errors import BridgeError
from bridge.hashing import job_key
from bridge.history import guarded_set, identity_of, locked, record, reload, transition
from bridge.models import (
    Block, BlockStatus, CacheStatus, Environment, Experiment, ExperimentStatus, Job, JobSplit,
    Queue, Result, SplitStatus, Worker, utcnow,
)

log = logging.getLogger(__name__)

B, E, S = BlockStatus, ExperimentStatus, SplitStatus
LIVE = (E.SCHEDULED, E.RUNNING)
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
            session, exp, E.CANCELLING, LIVE, source="cancel_experiment", warn=True)
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
    with locked(session):
        limit = MAX_SPLIT_ERRORS if max_split_errors is None else max_split_errors
        created: list[JobSplit] = []
        jobs = list(session.scalars(
            select(Job).join(Job.block).join(Block.experiment)
            .where(Job.runnable_date.is_not(None), Job.mirror.is_(False), ~Job.splits.any(),
                   Experiment.status.in_(LIVE))
            .order_by(Job.runnable_date, Job.id)
        ))
        while jobs:
            more: list[Job] = []
            for job in jobs:
                more.extend(_split_job(session, job, cache_root, limit, created))
            jobs = more
    return created


def _split_job(
    session: Session, job: Job, root: str | None, limit: int, created: list[JobSplit]
) -> list[Job]:
    """Split one job, or skip or mirror it; returns the jobs this made runnable."""
    state = inspect(job)
    if state.deleted or state.was_deleted or job.mirror or job.splits:
        return []  # an earlier job of this call failed its experiment, or mirrored this one
    block = job.block
    if block.experiment.status not in LIVE or block.status not in (B.PENDING, B.PROCESSING):
        return []
    if block.outputs and all(c.status == CacheStatus.CACHED for c in block.outputs):
        log.info("block %s: outputs cached meanwhile, done without running", block.name)
        return outcomes.complete_job(session, job, "split_new_jobs")
    original = _original_of(session, job)
    if original is not None:
        guarded_set(session, job, Job.mirror.is_(False), source="mirror", mirror=True)
        log.info("job %s (block %s) mirrors job %s", job.id, block.name, original.id)
        if original.start_date is not None:
            outcomes.start_job(session, original)
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


def _original_of(session: Session, job: Job) -> Job | None:
    """Another live job computing the same key (with queued or running splits), if any."""
    return session.scalar(
        select(Job).join(Job.block)
        .where(Job.key == job.key, Job.id != job.id, Job.mirror.is_(False),
               Block.status.in_((B.PENDING, B.PROCESSING)),
               Job.splits.any(JobSplit.status.in_((S.QUEUED, S.PROCESSING))))
        .order_by(Job.id).limit(1)
    )


def _ranges(block: Block, root: str | None) -> list[tuple[int | None, int | None]] | None:
    """The split ranges of a block; [(None, None)] when unsplit; None if an index is missing."""
    inputs = json.loads(block.command).get("inputs", {})
    if block.required_slots == 1 or not inputs:
        return [(None, None)]
    indexes = []
    for name, entry in sorted(inputs.items()):
        if "dataset" in entry:
            indexes.append([(i, i) for i in range(entry["size"])])
            continue
        try:
            indexes.append(read_index(entry["path"], root))
        except CacheError as e:
            log.warning("block %s, input %s: %s", block.name, name, e)
            return None
    return split_ranges(indexes, block.required_slots) or None


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


# --- candidates, mirrors -------------------------------------------------------------------


def _on_slurm_clause() -> Any:
    """Splits that occupy a slot: claimed, pending on Slurm, running or cancelling."""
    return or_(JobSplit.status.in_((S.PROCESSING, S.CANCELLING)),
               and_(JobSplit.status == S.QUEUED, JobSplit.submission_tag.is_not(None)))


def retrieve_candidate_splits_for_queue(session: Session, queue: Queue | int) -> list[JobSplit]:
    """Queued, unclaimed splits of the queue, oldest runnable first, per-author limited.

    An author may have at most the queue's ``max_slots_per_user`` splits on
    Slurm (claimed, pending or running) at once. Read-only; does not commit.
    """
    qid = identity_of(queue)
    q = session.get(Queue, qid)
    if q is None:
        return []
    used = dict(session.execute(
        select(Experiment.author, func.count(JobSplit.id))
        .join(JobSplit.job).join(Job.block).join(Block.experiment)
        .where(Block.queue_id == qid, _on_slurm_clause()).group_by(Experiment.author)
    ).all())
    rows = session.execute(
        select(JobSplit, Experiment.author).join(JobSplit.job).join(Job.block)
        .join(Block.experiment)
        .where(Block.queue_id == qid, JobSplit.status == S.QUEUED,
               JobSplit.submission_tag.is_(None), JobSplit.slurm_job_id.is_(None),
               Job.runnable_date.is_not(None), Job.mirror.is_(False),
               Experiment.status.in_(LIVE))
        .order_by(Job.runnable_date, Job.id, JobSplit.split_index)
    ).all()
    chosen = []
    for split, author in rows:
        if used.get(author, 0) < q.max_slots_per_user:
            used[author] = used.get(author, 0) + 1
            chosen.append(split)
    return chosen


def mark_similar_jobs_as_mirror(session: Session, job: Job | int) -> list[Job]:
    """Make other jobs with the same key mirrors of `job`, deleting their unsubmitted splits."""
    with locked(session):
        row = reload(session, Job, job, lock=True)
        marked = _mark_similar(session, row) if row is not None else []
    return marked


def _mark_similar(session: Session, job: Job) -> list[Job]:
    """mark_similar_jobs_as_mirror inside an open locked transaction."""
    if job.mirror:
        log.warning("job %s is itself a mirror: no jobs marked", job.id)
        return []
    marked = []
    others = session.scalars(select(Job).where(  # not-yet-runnable jobs wait their turn
        Job.key == job.key, Job.id != job.id, Job.mirror.is_(False),
        Job.runnable_date.is_not(None)).order_by(Job.id))
    for other in others:
        if any(s.status != S.QUEUED or s.submission_tag is not None for s in other.splits):
            log.info("job %s has splits on Slurm: not made a mirror of job %s", other.id, job.id)
            continue
        other.splits.clear()
        guarded_set(session, other, Job.mirror.is_(False), source="mirror", mirror=True)
        marked.append(other)
        log.info("job %s (block %s) mirrors job %s", other.id, other.block.name, job.id)
    session.flush()
    if marked and job.start_date is not None:
        outcomes.start_job(session, job)
    return marked


def get_configuration_for_split(split: JobSplit, cache_root: str | None = None) -> dict[str, Any]:
    """What an array element needs: the block's command, its range and its identifiers.

    Input and output ``path`` entries are relative to the cache root, given
    as ``cache`` when one is passed or configured (None otherwise).
    """
    job = split.job
    configuration = json.loads(job.block.command)
    try:
        root: str | None = str(resolve_cache_root(cache_root))
    except CacheError:
        root = None
    configuration.update(
        range=None if split.start_index is None else [split.start_index, split.end_index],
        split_index=split.split_index, nb_splits=len(job.splits),
        split_id=split.id, job_id=job.id, block_id=job.block.id, cache=root,
    )
    return configuration


# --- the submitter's primitives ------------------------------------------------------------


def mark_splits_submitting(
    session: Session, splits: Sequence[JobSplit | int], tag: str
) -> list[JobSplit]:
    """Claim queued, unclaimed splits of live experiments with `tag`, before sbatch.

    One guarded UPDATE for all of them; returns those this call claimed.
    """
    ids = [pk for pk in map(identity_of, splits) if pk is not None]
    with locked(session):
        live_jobs = (select(Job.id).join(Job.block).join(Block.experiment)
                     .where(Job.mirror.is_(False), Experiment.status.in_(LIVE)))
        session.execute(
            update(JobSplit).where(
                JobSplit.id.in_(ids), JobSplit.status == S.QUEUED,
                JobSplit.submission_tag.is_(None), JobSplit.slurm_job_id.is_(None),
                JobSplit.job_id.in_(live_jobs))
            .values(submission_tag=tag).execution_options(synchronize_session=False))
        claimed = list(session.scalars(
            select(JobSplit).where(JobSplit.submission_tag == tag, JobSplit.id.in_(ids))
            .order_by(JobSplit.job_id, JobSplit.split_index)))
        if len(claimed) < len(ids):
            log.info("tag %s claimed %d of %d splits (others taken, gone or not queued)",
                     tag, len(claimed), len(ids))
    return claimed


def record_submission(
    session: Session, tag: str, slurm_job_id: str | int, *, offset: int = 0
) -> list[JobSplit]:
    """Record the array job id of the splits claimed with `tag`; element ids are ``<id>_<index>``.

    The array index is ``split_index - offset`` (a job of more splits than
    MaxArraySize goes out as several arrays). One guarded UPDATE. Then the jobs
    with the same key as a submitted job become its mirrors.
    """
    unrecorded = and_(JobSplit.submission_tag == tag, JobSplit.slurm_job_id.is_(None))
    with locked(session):
        ids = list(session.scalars(select(JobSplit.id).where(unrecorded)))
        index = cast(JobSplit.split_index - offset, String)
        session.execute(
            update(JobSplit).where(JobSplit.id.in_(ids), unrecorded)
            .values(slurm_job_id=str(slurm_job_id), submit_time=utcnow(),
                    slurm_element_id=literal(f"{slurm_job_id}_") + index)
            .execution_options(synchronize_session=False))
        splits = list(session.scalars(
            select(JobSplit).where(JobSplit.id.in_(ids))
            .order_by(JobSplit.job_id, JobSplit.split_index)))
        log.info("tag %s recorded as Slurm job %s: splits %s", tag, slurm_job_id,
                 [split.id for split in splits])
        for job in {split.job for split in splits}:
            _mark_similar(session, job)
    return splits


def release_submission(session: Session, tag: str) -> int:
    """Give back splits claimed with `tag` that sbatch surely did not take; returns how many."""
    with locked(session):
        splits = list(session.scalars(select(JobSplit).where(
            JobSplit.submission_tag == tag, JobSplit.slurm_job_id.is_(None))))
        for split in splits:
            if split.status == S.CANCELLING:
                transition(session, split, S.CANCELLED, {S.CANCELLING}, source="release_submission",
                           submission_tag=None)
                outcomes.settle_job(session, split.job, "release_submission")
            else:
                guarded_set(session, split, JobSplit.slurm_job_id.is_(None), source="release",
                            submission_tag=None)
    return len(splits)


def record_split_node(session: Session, split: JobSplit | int, node: str) -> bool:
    """Record the Slurm node running a split (and its Worker row, if one has that name)."""
    return record_slurm_state(session, split, node=node)


def record_slurm_state(
    session: Session, split: JobSplit | int, *, state: str | None = None,
    node: str | None = None, exit_code: str | None = None,
    start_time: datetime | None = None, end_time: datetime | None = None,
) -> bool:
    """Record what sacct says of a split (only the fields given); False if the split is gone."""
    with locked(session):
        row = reload(session, JobSplit, split)
        values: dict[str, Any] = {k: v for k, v in {
            "slurm_state": state, "slurm_node": node, "slurm_exit_code": exit_code,
            "start_time": start_time, "end_time": end_time}.items() if v is not None}
        if node is not None:
            worker = session.scalar(select(Worker).where(Worker.name == node))
            values["worker_id"] = worker.id if worker else None
        changed = row is not None and bool(values) and guarded_set(
            session, row, JobSplit.id == row.id, source="slurm", **values)
    return changed


def note_cache_error(session: Session, split: JobSplit | int) -> int | None:
    """Count one failed cache verification of a split; returns the new count (None if gone)."""
    with locked(session):
        row = reload(session, JobSplit, split)
        count = None
        if row is not None:
            count = row.cache_errors + 1
            guarded_set(session, row, JobSplit.cache_errors == row.cache_errors,
                        source="cache_error", cache_errors=count)
    return count


def splits_to_scancel(session: Session) -> list[JobSplit]:
    """Every cancelling split with a Slurm id (scancel is idempotent: retry until reported)."""
    return list(session.scalars(select(JobSplit).where(
        JobSplit.status == S.CANCELLING, JobSplit.slurm_job_id.is_not(None)
    ).order_by(JobSplit.id)))
