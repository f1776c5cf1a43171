"""assign_splits_to_workers on Slurm: claim, render, sbatch, record — exactly once.

In Slurm the partition is the queue and Slurm picks the node, so "assigning"
means submitting: the candidate splits of every queue go out as one job array
per job (array index = split index), with the queue's limits as sbatch options.

Exactly once: the splits are claimed with a unique submission tag (which is also
the array's job name) *before* sbatch and get their array id *after*. sbatch is
run again only when it surely never reached slurmctld. When its outcome is
unknown (it timed out, the SSH connection dropped, slurmctld did not answer),
or the process died in between, the claim is kept and its tag looked up on
the cluster (squeue and sacct) on every cycle until the answer is sure:
recorded when found, released only after the misses of bridge.claims.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import claims, handover, render, strikes
from bridge.array_files import BatchScript, array_account, render_script, write_spool
from bridge.back_pressure import Key
from bridge.backend import Backend
from bridge.element_config import JobFacts, job_facts
from bridge.errors import BridgeError, CommandError
from bridge.history import identity_of
from bridge.models import JobSplit, Queue
from bridge.outcomes import on_split_fail
from bridge.queue_settings import QueueSettings
from bridge.queue_versions import settings_for_job
from bridge.retry import backoff_delays
from bridge.sbatch_scripts.spool import array_spool_dir
from bridge.slurm_client import OutcomeUnknown, SubmissionRefused, SubmitLimitReached
from bridge.submission_db import Candidate, candidate_splits, element_ids, record_submission, release_submission
from bridge.submission_rows import ClaimedSplit, claim_splits, record_array, release_array
from bridge.tags import abandoned, new_tag

log = logging.getLogger(__name__)


class SpoolUnavailable(BridgeError):
    """The spool directory cannot be written (disk full, quota, NFS gone): transient, no split's fault."""


@dataclass(frozen=True)
class Submission:
    """One job array sent to Slurm (or found there by its tag)."""

    tag: str
    job_id: int
    split_ids: tuple[int, ...]
    queue: str


def assign_splits_to_workers(session: Session, backend: Backend) -> list[Submission]:
    """Submit the candidate splits of every queue, one array per job; return what went out.

    The seed's function on its own: siblings of splits whose submission failed
    for good are scancelled here (the cycle gathers them into its one scancel
    instead, through `submit_candidates`).
    """
    submitted, to_cancel = submit_candidates(session, backend)
    if to_cancel:
        backend.client.cancel(to_cancel)
    return submitted


def submit_candidates(session: Session, backend: Backend) -> tuple[list[Submission], list[str]]:
    """Settle old claims, then submit every queue's candidates, one array per job.

    Returns the arrays that went out and the element ids to scancel (siblings of
    splits that failed for good at submission).
    """
    reconcile_claims(session, backend)
    submitted: list[Submission] = []
    to_cancel: list[str] = []
    for queue in session.scalars(select(Queue).order_by(Queue.id)).all():
        candidates = candidate_splits(session, queue)  # plain values: commits expire no objects of theirs
        # one array per job and excluded nodes (--exclude is the array's): candidates come sorted by job
        for _, splits in groupby(candidates, key=lambda s: (s.job_id, s.exclude_nodes or "")):
            for chunk in array_chunks(list(splits), backend.client.max_array_size()):  # read once, when needed
                submitted += submit_within_limits(session, backend, queue, chunk, to_cancel)
    return submitted, to_cancel


def submit_within_limits(session: Session, backend: Backend, queue: Queue, splits: Sequence[Candidate],
                         to_cancel: list[str]) -> list[Submission]:
    """Submit the splits as arrays no larger than Slurm's submit limits let in now (bridge.back_pressure).

    A refusal at a submit limit releases the claim and tries half as many at
    once; when even one is refused, the rest stay queued until room frees.
    The job's facts and mapping version are read once, for all its arrays.
    """
    job = job_facts(session, splits[0].job_id)  # read before the claims: nothing is loaded between claim and record
    if job is None:  # the job is gone
        return []
    version, settings = settings_for_job(session, job.job_id, queue)  # fixed by the job's first array
    key = Key(array_account(backend, job, settings) or "", settings.qos or "", settings.partition)
    submitted: list[Submission] = []
    while splits:
        size = backend.pressure.size(key, len(splits))
        if size == 0:
            break
        try:
            submission = submit_array(session, backend, queue, (version, settings, job), splits[:size], to_cancel)
        except SubmitLimitReached as e:
            backend.pressure.refused(key, size, e.limit)
            continue
        backend.pressure.accepted(key, size)
        if submission is not None:
            submitted.append(submission)
        splits = splits[size:]
    return submitted


def array_chunks(splits: Sequence[JobSplit], max_array_size: int) -> list[list[JobSplit]]:
    """Splits of one job grouped so that every array index stays below MaxArraySize."""
    chunks: dict[int, list[JobSplit]] = {}
    for split in splits:
        chunks.setdefault(split.split_index // max_array_size, []).append(split)
    return [chunks[k] for k in sorted(chunks)]


def submit_array(session: Session, backend: Backend, queue: Queue, rendered_as: tuple[str, QueueSettings, JobFacts],
                 splits: Sequence[Candidate | JobSplit], to_cancel: list[str]) -> Submission | None:
    """Claim, write the array's manifest, render, sbatch and record one array.

    `rendered_as` is the job's mapping version, its queue settings and its facts
    (submit_within_limits reads them once per job).

    Per array, not per split: one claim and one record statement, one
    manifest file; the splits are handled as plain values after the claim (a
    commit expires ORM objects, and reloading 1,000 of them one by one is what
    made submission slow).
    """
    tag = new_tag(deployment=backend.config.deployment)
    ids = [s.id if isinstance(s, Candidate) else identity_of(s) for s in splits]  # no load of expired objects
    version, settings, job = rendered_as
    job_id, exclude_nodes = splits[0].job_id, splits[0].exclude_nodes
    claimed = claim_splits(session, ids, tag, mapping_version=version)
    if not claimed:
        return None
    offset = _offset(claimed[0], backend.client.max_array_size())
    try:
        script = _script(session, backend, settings, job, claimed, tag, offset, exclude_nodes, to_cancel)
        if script is None:
            return None
        slurm_id = sbatch_once(backend, tag, script)
    except SubmitLimitReached:  # nothing was submitted: the splits go back to the queue, no fault of theirs
        release_array(session, tag)
        shutil.rmtree(array_spool_dir(backend.config.spool_dir, tag), ignore_errors=True)
        raise
    except (render.TemplateError, render.UnsafeValueError, SubmissionRefused) as e:
        to_cancel += _fail_claimed(session, claimed, f"submission to queue {queue.name!r} failed: {e}")
        return None
    except OSError as e:  # the spool's disk (full, quota, NFS away): never the splits' fault
        release_array(session, tag)
        raise SpoolUnavailable(f"cannot write the spool files of {tag} under {backend.config.spool_dir}: {e}; "
                               "nothing submitted, nothing failed: retried when the disk has room") from e
    except OutcomeUnknown as e:  # Slurm may have it: keep the claim and look the tag up
        log.warning("sbatch of %s: %s; its outcome is unknown, the claim is kept until the tag is found "
                    "or surely missing", tag, e)
        claims.note_unknown(session, tag, str(e))
        if settle_claim(session, backend, tag) != RECORDED:
            return None
        recorded = session.execute(select(JobSplit.id, JobSplit.slurm_job_id).where(JobSplit.submission_tag == tag)
                                   .order_by(JobSplit.split_index)).all()
        return Submission(tag, int(recorded[0].slurm_job_id), tuple(r.id for r in recorded), queue.name)
    except CommandError as e:  # sbatch never reached slurmctld, on every attempt: nothing was submitted
        log.warning("sbatch of %s failed for now, splits go back to the queue: %s", tag, e)
        release_array(session, tag)
        return None
    recorded = record_array(session, tag, slurm_id, offset=offset)
    log.info("array %s (%s) submitted to %s: %d splits of job %s (queue %s version %s)", slurm_id, tag,
             settings.partition, len(recorded), job_id, queue.name, version)
    return Submission(tag, slurm_id, tuple(recorded), queue.name)


def _script(session: Session, backend: Backend, settings: QueueSettings, job: JobFacts, claimed: list[ClaimedSplit],
            tag: str, offset: int, exclude_nodes: str | None, to_cancel: list[str]) -> BatchScript | None:
    """Write the manifest and render the script; None when the job's own data broke it (its strike).

    Disk and template errors propagate (the caller tells them apart); an error
    only the job's data can cause releases the claim and counts a strike
    (bridge.strikes): on the third cycle in a row the job fails, naming it.
    """
    try:
        spool = write_spool(backend, tag, job, claimed, offset, handover.array_linger(session, job, len(claimed)))
        script = render_script(backend, settings, job, claimed, tag, spool, offset, exclude_nodes)
    except Exception as e:
        if not strikes.is_job_data_error(e):
            raise
        release_array(session, tag)
        reason = strikes.strike(job.job_id, f"the spool files or script of job {job.job_id} (block "
                                            f"{job.block_name!r}) cannot be written", e)
        if reason is not None:
            to_cancel += _fail_claimed(session, claimed, reason)
        return None
    strikes.clear(job.job_id)
    return script


def _offset(split: JobSplit | ClaimedSplit, max_array_size: int) -> int:
    return (split.split_index // max_array_size) * max_array_size


def sbatch_once(backend: Backend, tag: str, script: BatchScript) -> int:
    """sbatch the script; run it again (after a backoff) only while sbatch surely never reached slurmctld.

    Raises SubmitLimitReached (nothing submitted: back-pressure), SubmissionRefused
    (permanent), OutcomeUnknown (it may have been accepted: the caller keeps the
    claim and looks the tag up), or the last CommandError once every attempt
    surely failed.
    """
    delays = backoff_delays(backend.config.retry)
    while True:
        try:
            return backend.client.submit(script.text, script.directives)
        except (SubmitLimitReached, SubmissionRefused, OutcomeUnknown):
            raise
        except CommandError as e:  # never reached slurmctld: nothing was submitted
            delay = next(delays, None)
            if delay is None:
                raise
            log.warning("sbatch of %s: %s; retrying in %.1f s", tag, e, delay)
        backend.sleep(delay)


def longest_submission(backend: Backend) -> float:
    """The longest sbatch_once can hold a claim: every attempt timing out, every backoff at its cap."""
    retry, timeout = backend.config.retry, backend.config.timeouts.submit
    return retry.attempts * (timeout + retry.max_delay) + 2 * timeout


def reconcile_claims(session: Session, backend: Backend, older_than: float | None = None) -> int:
    """Look up the tags of splits claimed but never recorded (a crash, a timeout or a lost connection).

    A claim another live submitter may still hold (younger than `older_than`,
    default the longest a submission can take) is left alone; a claim of a dead
    process of this host, or of this process, is looked up (settle_claim).
    Returns how many tags were settled (recorded or released).
    """
    older_than = longest_submission(backend) if older_than is None else older_than
    tags = list(session.scalars(select(JobSplit.submission_tag).distinct().where(
        JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_(None))))
    claims.prune(session, tags)
    return sum(settle_claim(session, backend, tag) != KEPT for tag in tags if abandoned(tag, older_than))


RECORDED, RELEASED, KEPT = "recorded", "released", "kept"


def settle_claim(session: Session, backend: Backend, tag: str) -> str:
    """One look-up of a claim's tag: RECORDED when Slurm has it, RELEASED when surely lost, else KEPT.

    Released only after the misses of bridge.claims (`[claims]` in bridge.toml):
    a look-up where squeue or sacct failed, or a single miss, proves nothing.
    """
    try:
        found = backend.client.find(tag)
    except CommandError as e:
        log.warning("cannot look up claimed tag %s yet: %s", tag, e)
        claims.note_failed_lookup(session, tag, str(e))
        return KEPT
    if found is not None:
        log.warning("tag %s was submitted as %s before a crash or timeout: recording it", tag, found)
        record_submission(session, tag, found, offset=_claimed_offset(session, tag, backend.client.max_array_size()))
        claims.forget(session, tag)
        return RECORDED
    if not claims.note_miss(session, tag, backend.config.claims):
        return KEPT
    log.warning("tag %s never reached Slurm: its splits go back to the queue", tag)
    release_submission(session, tag)
    claims.forget(session, tag)
    return RELEASED


def _claimed_offset(session: Session, tag: str, max_array_size: int) -> int:
    first = session.scalars(select(JobSplit).where(JobSplit.submission_tag == tag)
                            .order_by(JobSplit.split_index)).first()
    return _offset(first, max_array_size) if first is not None else 0


def _fail_claimed(session: Session, splits: Sequence[ClaimedSplit], reason: str) -> list[str]:
    """Fail splits whose array Slurm refused for good; the element ids of siblings to scancel."""
    log.error("%s (splits %s)", reason, [s.id for s in splits])
    to_cancel: list[str] = []
    for split in splits:
        to_cancel += element_ids(on_split_fail(session, split.id, reason))
    return to_cancel
