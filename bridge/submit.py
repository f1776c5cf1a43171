"""assign_splits_to_workers on Slurm: claim, render, sbatch, record — exactly once.

In Slurm the partition is the queue and Slurm picks the node, so "assigning"
means submitting: the candidate splits of every queue go out as one job array
per job (array index = split index), with the queue's limits as sbatch options.

Exactly once: the splits are claimed with a unique submission tag (which is also
the array's job name) *before* sbatch and get their array id *after*. When sbatch
times out, or the process dies in between, the tag is looked up on the cluster
(squeue, then sacct) before anything is submitted again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import render, slurm as cmds
from bridge.config import BridgeConfig
from bridge.errors import BridgeError, CommandError, CommandTimeout
from bridge.models import JobSplit, Queue
from bridge.retry import backoff_delays
from bridge.runner import Runner
from bridge.sbatch_scripts import spool as spool_files
from bridge.tags import abandoned, new_tag, tag_age
from bridge.cancelling import process_newly_cancelled_experiments
from bridge.outcomes import on_split_fail
from bridge.scheduling import split_new_jobs
from bridge.submission_db import (
    get_configuration_for_split, mark_splits_submitting, record_submission, release_submission,
    retrieve_candidate_splits_for_queue,
)

log = logging.getLogger(__name__)

ELEMENT_RUNNER = "bridge.sbatch_scripts.element"
SBATCH_TIMEOUT = 30.0


class SubmissionError(BridgeError):
    """sbatch refused a job array."""


@dataclass
class Slurm:
    """What submitting needs: the command runner and the loaded configuration."""

    runner: Runner
    config: BridgeConfig
    python: str = sys.executable
    sleep: Callable[[float], None] = time.sleep
    _max_array_size: int | None = field(default=None, repr=False)

    def max_array_size(self) -> int:
        """MaxArraySize from `scontrol show config` (read once; Slurm's default if unreadable)."""
        if self._max_array_size is None:
            result = self.runner.run(cmds.scontrol_show_config_argv(), timeout=SBATCH_TIMEOUT)
            config = cmds.parse_scontrol_show_config(result.stdout) if result.ok else {}
            self._max_array_size = cmds.max_array_size(config)
        return self._max_array_size


@dataclass(frozen=True)
class Submission:
    """One job array sent to Slurm (or found there by its tag)."""

    tag: str
    job_id: int
    split_ids: tuple[int, ...]
    queue: str


def submit_cycle(session: Session, slurm: Slurm) -> tuple[list[str], list[Submission]]:
    """The bridge's half of a cycle: split new jobs, scancel what is being cancelled, submit arrays.

    Returns the element ids scancelled and the arrays submitted.
    """
    split_new_jobs(session, str(slurm.config.cache_root), slurm.config.split_errors)
    cancelled = cancel_on_slurm(slurm, process_newly_cancelled_experiments(session))
    return cancelled, assign_splits_to_workers(session, slurm)


def assign_splits_to_workers(session: Session, slurm: Slurm) -> list[Submission]:
    """Submit the candidate splits of every queue, one array per job; return what went out."""
    reconcile_claims(session, slurm)
    submitted = []
    for queue in session.scalars(select(Queue).order_by(Queue.id)).all():
        candidates = retrieve_candidate_splits_for_queue(session, queue)
        for _, splits in groupby(candidates, key=lambda s: s.job_id):
            for chunk in array_chunks(list(splits), slurm.max_array_size()):
                submission = submit_array(session, slurm, queue, chunk)
                if submission is not None:
                    submitted.append(submission)
    return submitted


def array_chunks(splits: Sequence[JobSplit], max_array_size: int) -> list[list[JobSplit]]:
    """Splits of one job grouped so that every array index stays below MaxArraySize."""
    chunks: dict[int, list[JobSplit]] = {}
    for split in splits:
        chunks.setdefault(split.split_index // max_array_size, []).append(split)
    return [chunks[k] for k in sorted(chunks)]


def submit_array(session: Session, slurm: Slurm, queue: Queue, splits: list[JobSplit]) -> Submission | None:
    """Claim, write the element configurations, render, sbatch and record one array."""
    tag = new_tag()
    claimed = mark_splits_submitting(session, splits, tag)
    if not claimed:
        return None
    offset = _offset(claimed[0], slurm.max_array_size())
    try:
        spool = write_spool(slurm.config, tag, claimed, offset)
        script = render_script(slurm, queue, claimed, tag, spool, offset)
        job_id = sbatch_once(slurm, tag, script)
    except (render.TemplateError, render.UnsafeValueError, SubmissionError, OSError) as e:
        _fail_claimed(session, slurm, claimed, f"submission to queue {queue.name!r} failed: {e}")
        return None
    except CommandError as e:  # transient errors outlived every retry: sbatch surely took nothing
        log.warning("sbatch of %s failed for now, splits go back to the queue: %s", tag, e)
        release_submission(session, tag)
        return None
    recorded = record_submission(session, tag, job_id, offset=offset)
    log.info("array %s (%s) submitted to %s: %d splits of job %s", job_id, tag, queue.partition,
             len(recorded), claimed[0].job_id)
    return Submission(tag, job_id, tuple(s.id for s in recorded), queue.name)


def _offset(split: JobSplit, max_array_size: int) -> int:
    return (split.split_index // max_array_size) * max_array_size


def write_spool(config: BridgeConfig, tag: str, splits: Sequence[JobSplit], offset: int) -> Path:
    """One JSON per split, `<spool>/<tag>/split-<array index>.json`: what its element runs."""
    spool = spool_files.array_spool_dir(config.spool_dir, tag)
    root = str(Path(config.cache_root).resolve())
    for split in splits:
        configuration = get_configuration_for_split(split, root)
        spool_files.write_split_file(spool, split.split_index - offset, configuration, root, tag)
    return spool


def render_script(slurm: Slurm, queue: Queue, splits: Sequence[JobSplit], tag: str, spool: Path,
                  offset: int) -> str:
    """The array's sbatch script: the queue's limits and the admins' extras for its partition."""
    extra = slurm.config.queues.get(queue.name)
    block = splits[0].job.block
    indices = tuple(s.split_index - offset for s in splits)
    spec = render.ArraySpec(
        job_name=tag, submission_tag=tag, partition=queue.partition,
        cpus_per_task=queue.cores_per_slot, mem_mb=queue.memory_limit, time_minutes=queue.time_limit,
        array_indices=indices, throttle=queue.max_slots_per_user,
        output=str(spool / "slurm-%A_%a.out"), error=str(spool / "slurm-%A_%a.err"),
        python=slurm.python, element_runner=ELEMENT_RUNNER, spool_dir=str(spool),
        comment=f"beat experiment={block.experiment.name} block={block.name} job={splits[0].job_id}",
        account=extra.account if extra else None, qos=extra.qos if extra else None,
        extra_directives=tuple(extra.extra_directives) if extra else (),
    )
    search = [slurm.config.templates_dir] if slurm.config.templates_dir else []
    template = extra.template if extra and extra.template else None
    return render.render_array_script(spec, template=template, search_path=search)


def sbatch_once(slurm: Slurm, tag: str, script: str) -> int:
    """sbatch the script, retrying transient errors; before each retry, look the tag up first."""
    delays = backoff_delays(slurm.config.retry)
    while True:
        try:
            result = slurm.runner.run(cmds.sbatch_argv(), stdin=script, timeout=SBATCH_TIMEOUT)
            if result.ok:
                return cmds.parse_sbatch_parsable(result.stdout)
            if not cmds.is_transient(result.stderr):
                raise SubmissionError(cmds.permanent_reason(result.stderr) or result.stderr.strip())
            error: CommandError = CommandError(result.argv, result.returncode, result.stdout, result.stderr)
        except CommandTimeout as e:
            error = e
        delay = next(delays, None)
        if delay is None:
            raise error
        log.warning("sbatch of %s: %s; looking for it, then retrying in %.1f s", tag, error, delay)
        slurm.sleep(delay)
        found = find_by_tag(slurm, tag)
        if found is not None:
            return found


def find_by_tag(slurm: Slurm, tag: str) -> int | None:
    """The array job id Slurm knows under the tag (its job name), or None.

    squeue knows a job from the moment sbatch returns; sacct only 0.5-1.4 s later
    (slurm-notes.md), but keeps it after slurmctld has forgotten it.
    """
    queued = slurm.runner.run(["squeue", "-h", "-t", "all", "--name", tag, "-o", "%F"], timeout=SBATCH_TIMEOUT)
    ids = {int(w) for w in queued.stdout.split() if w.isdigit()} if queued.ok else set()
    if not ids:
        age = tag_age(tag) or 0.0
        start = time_ago(max(age, 0.0) + 120.0)
        argv = cmds.sacct_argv(start, names=[tag], fields=("JobID",))
        recorded = slurm.runner.run(argv, timeout=SBATCH_TIMEOUT)
        if not recorded.ok:
            raise CommandError(recorded.argv, recorded.returncode, recorded.stdout, recorded.stderr)
        ids = {int(line.split("_")[0]) for line in recorded.stdout.split() if line.split("_")[0].isdigit()}
    if len(ids) > 1:
        log.error("tag %s names several arrays %s: keeping the first", tag, sorted(ids))
    return min(ids) if ids else None


def time_ago(seconds: float) -> datetime:
    """The cluster's local time `seconds` ago (sacct -S takes local time)."""
    return datetime.now() - timedelta(seconds=seconds)


def longest_submission(slurm: Slurm) -> float:
    """The longest sbatch_once can hold a claim: every attempt timing out, every backoff at its cap."""
    retry = slurm.config.retry
    return retry.attempts * (SBATCH_TIMEOUT + retry.max_delay) + 2 * SBATCH_TIMEOUT


def reconcile_claims(session: Session, slurm: Slurm, older_than: float | None = None) -> int:
    """Settle splits claimed but never recorded (a crash or timeout around sbatch).

    A claim another live submitter may still hold (younger than `older_than`,
    default the longest a submission can take) is left alone; a claim of a dead
    process of this host, or of this process, is settled at once. Found on the
    cluster: recorded. Not found: released to the queue. Returns how many tags
    were settled.
    """
    older_than = longest_submission(slurm) if older_than is None else older_than
    tags = session.scalars(select(JobSplit.submission_tag).distinct().where(
        JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_(None))).all()
    settled = 0
    for tag in tags:
        if not abandoned(tag, older_than):
            continue
        try:
            found = find_by_tag(slurm, tag)
        except CommandError as e:
            log.warning("cannot look up claimed tag %s yet: %s", tag, e)
            continue
        if found is not None:
            offset = _claimed_offset(session, tag, slurm.max_array_size())
            log.warning("tag %s was submitted as %s before a crash or timeout: recording it", tag, found)
            record_submission(session, tag, found, offset=offset)
        else:
            log.warning("tag %s never reached Slurm: its splits go back to the queue", tag)
            release_submission(session, tag)
        settled += 1
    return settled


def _claimed_offset(session: Session, tag: str, max_array_size: int) -> int:
    first = session.scalars(select(JobSplit).where(JobSplit.submission_tag == tag)
                            .order_by(JobSplit.split_index)).first()
    return _offset(first, max_array_size) if first is not None else 0


def _fail_claimed(session: Session, slurm: Slurm, splits: Sequence[JobSplit], reason: str) -> None:
    log.error("%s (splits %s)", reason, [s.id for s in splits])
    to_cancel: list[JobSplit] = []
    for split in splits:
        to_cancel += on_split_fail(session, split.id, reason)
    cancel_on_slurm(slurm, to_cancel)


def cancel_on_slurm(slurm: Slurm, splits: Sequence[JobSplit]) -> list[str]:
    """One scancel for every element id of the splits (chunked for very long lists)."""
    ids = sorted({s.slurm_element_id for s in splits if s.slurm_element_id})
    for start in range(0, len(ids), 1000):
        result = slurm.runner.run(cmds.scancel_argv(ids[start:start + 1000]), timeout=SBATCH_TIMEOUT)
        if not result.ok:
            log.warning("scancel of %d elements: %s", len(ids[start:start + 1000]), result.stderr.strip())
    return ids

