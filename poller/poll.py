"""One poll: one squeue (sacct where squeue has forgotten) for every active split, then the callbacks.

Active means submitted (an element id) and not final: queued, processing or
cancelling. squeue answers from slurmctld at once (see poller.squeue for why it
comes first); the sacct fallback is bounded by the oldest active submit time
(minus a margin) and filtered by array ids, chunked if the id list is long. Never
one call per job. Every callback is a guarded transition, so reading the same state again
(after a crash, a restart, or simply the next cycle) changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from bridge import helpers
from bridge.cache import is_cache_complete
from bridge.errors import BridgeError, CommandError
from bridge.hashing import cache_path
from bridge.models import JobSplit, SplitStatus as S
from bridge.slurm import sacct_argvs
from bridge.sbatch_scripts import spool as spool_files
from bridge.submission_db import note_cache_error, record_slurm_state
from bridge.submit import Slurm, cancel_on_slurm
from poller.sacct import SacctRecord, parse_sacct
from poller.squeue import NO_SUCH_JOB, SqueueView, by_element, squeue_argv, squeue_view
from poller.states import TERMINAL, Outcome, Verdict, judge, outcome_of

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=5)
MISSING_GRACE = 60.0  # seconds a submitted element may be absent from sacct before we warn


class PollError(BridgeError):
    """sacct could not be read: nothing was changed."""


@dataclass
class PollReport:
    """What one poll saw and did."""

    active: int = 0
    squeue_calls: int = 0
    sacct_calls: int = 0
    events: list[tuple[int, str]] = field(default_factory=list)  # (split id, outcome)
    missing: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.events)


class Active(NamedTuple):
    """The few columns of an active split that a poll reads."""

    id: int
    slurm_job_id: str
    slurm_element_id: str
    status: str  # the letter
    slurm_state: str | None
    submit_time: datetime | None


# Built once: this runs every second, and building a statement costs as much as running it.
_ACTIVE = select(
    JobSplit.id, JobSplit.slurm_job_id, JobSplit.slurm_element_id, type_coerce(JobSplit.status, String),
    JobSplit.slurm_state, JobSplit.submit_time,
).where(
    JobSplit.slurm_element_id.is_not(None),
    JobSplit.status.in_([S.QUEUED, S.PROCESSING, S.CANCELLING]),
).order_by(JobSplit.id)


def active_splits(session: Session) -> list[Active]:
    """Every submitted, non-final split: what the poller adopts on every cycle (and after a restart).

    Plain tuples, not ORM objects, and the status as its letter (indexed column):
    most splits need nothing done.
    """
    return [Active._make(row) for row in session.execute(_ACTIVE).tuples()]


def read_states(slurm: Slurm, splits: Sequence[Active], report: PollReport) -> SqueueView:
    """Started elements' latest records by element id (`123_4`), and the ids still pending.

    One squeue for every active array; sacct only for the elements squeue no
    longer knows. Raises PollError only when neither answers.
    """
    view = SqueueView()
    squeue_error = None
    report.squeue_calls += 1
    try:
        result = slurm.runner.run(squeue_argv(sorted({int(s.slurm_job_id) for s in splits})), timeout=60)
        if result.ok:
            view = squeue_view(result.stdout)
        elif NO_SUCH_JOB not in result.stderr.lower():  # every array forgotten: not an error
            squeue_error = result.stderr.strip() or f"exit {result.returncode}"
    except CommandError as e:
        squeue_error = str(e)
    missing = _unseen(view, splits)
    if missing:
        try:
            rows = sacct_rows(slurm, missing, report)
            view.bare += rows
            view.records.update(by_element(rows))
        except PollError as e:
            if squeue_error is not None:
                raise PollError(f"squeue failed ({squeue_error}) and {e}") from e
            if not (view.records or view.pending):  # no source knows anything: an outage, so back off
                raise PollError(f"squeue knows none of the {len(splits)} active elements, and {e}") from e
            log.warning("%d elements unknown to squeue, and %s", len(missing), e)
    view.records.update(never_started(view.bare, _unseen(view, splits)))
    return view


def _unseen(view: SqueueView, splits: Sequence[Active]) -> list[Active]:
    return [s for s in splits if s.slurm_element_id not in view.records and s.slurm_element_id not in view.pending]


def never_started(rows: Iterable[SacctRecord], splits: Sequence[Active]) -> dict[str, SacctRecord]:
    """Element records for splits whose array was cancelled before they started.

    squeue and sacct show the never-started elements of a cancelled array as one
    row under the bare array id (`1465|CANCELLED by 0`, no `_T`; seen on 22.05),
    never per element: without this, such splits would wait forever. Only
    CANCELLED is trusted: a bare FAILED row can be an element's short-lived
    allocation row (slurm-notes.md).
    """
    whole = {r.array_job_id: r for r in rows
             if r.array_task_id is None and r.step is None and r.state == "CANCELLED"}
    found = {}
    for split in splits:
        row = whole.get(int(split.slurm_job_id))
        if row is not None:
            task = int(split.slurm_element_id.rpartition("_")[2])
            found[split.slurm_element_id] = replace(row, job_id=split.slurm_element_id, array_task_id=task)
    return found


def sacct_rows(slurm: Slurm, splits: Sequence[Active], report: PollReport) -> list[SacctRecord]:
    """Every sacct row of the splits' arrays, bounded by their submit times; PollError if sacct fails."""
    submitted = [s.submit_time for s in splits if s.submit_time is not None]
    start = _local(min(submitted) if submitted else datetime.now(timezone.utc).replace(tzinfo=None)) - MARGIN
    ids = sorted({int(s.slurm_job_id) for s in splits})
    records: list[SacctRecord] = []
    for argv in sacct_argvs(start, None, ids):
        report.sacct_calls += 1
        try:
            result = slurm.runner.run(argv, timeout=60)
        except CommandError as e:
            raise PollError(f"sacct failed: {e}") from e
        if not result.ok:
            raise PollError(f"sacct exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
        records += parse_sacct(result.stdout)
    return records


def poll_once(session: Session, slurm: Slurm, now: float | None = None) -> PollReport:
    """Read every active split's state (one squeue, sacct for what it forgot) and fire the callbacks.

    Raises PollError, changing nothing, when neither answers.
    """
    report = PollReport()
    splits = active_splits(session)
    report.active = len(splits)
    if not splits:
        return report
    view = read_states(slurm, splits, report)
    wall = now if now is not None else time.time()
    for split in splits:
        record = view.records.get(split.slurm_element_id)
        if record is None:
            if split.slurm_element_id not in view.pending:
                _missing(split, wall, report)
            continue
        if record.state_text == split.slurm_state and not _actionable(split.status, record.state):
            continue  # seen before, and nothing is owed for it
        outcome = apply_record(session, slurm, split.id, record)
        if outcome is not None:
            report.events.append((split.id, outcome))
    return report


def _actionable(status: str, state: str) -> bool:
    """Whether a split in `status` may owe a callback for a Slurm state it has already recorded."""
    outcome = outcome_of(state)
    return outcome in TERMINAL or (outcome is Outcome.STARTED and status == S.QUEUED)


def apply_record(session: Session, slurm: Slurm, split_id: int, record: SacctRecord) -> str | None:
    """Fire what one sacct record means for one split; returns what happened, or None."""
    split = session.get(JobSplit, split_id)
    if split is None or split.status not in (S.QUEUED, S.PROCESSING, S.CANCELLING):
        return None
    verdict = judge(record.state, record.exit_code, record.signal,
                    _stderr_of(slurm, record) if record.state == "FAILED" else None)
    if record.state_text != split.slurm_state:  # squeue's End of a running element is a forecast
        record_slurm_state(session, split_id, state=record.state_text, exit_code=f"{record.exit_code}:{record.signal}",
                           start_time=record.start, end_time=record.end if verdict.terminal else None)
    if verdict.outcome is Outcome.ACTIVE:
        return None
    if verdict.terminal and record.end is None:
        return None  # terminal rows without End are not settled yet (slurm-notes.md, after slurmdbd outages)
    started = _start(session, split_id, record)
    if verdict.outcome is Outcome.STARTED:
        return "started" if started else None
    if verdict.outcome is Outcome.DONE:
        return _done(session, slurm, split_id, record)
    if verdict.outcome is Outcome.FAILED:
        result = failure_result(verdict, read_result(slurm, record))
        cancel_on_slurm(slurm, helpers.on_split_fail(session, split_id, result))
        return f"failed:{verdict.reason}"
    cancel_on_slurm(slurm, helpers.on_split_cancelled(session, split_id))
    return "cancelled"


def _start(session: Session, split_id: int, record: SacctRecord) -> bool:
    """on_split_started and the node, once; also for an element first seen already finished."""
    split = session.get(JobSplit, split_id)
    if split is None or split.status != S.QUEUED:
        return False
    moved = helpers.on_split_started(session, split_id)
    if record.node_list and record.node_list != "None assigned":
        helpers.assign_split_to_worker(session, split_id, record.node_list)
    return moved


def _done(session: Session, slurm: Slurm, split_id: int, record: SacctRecord) -> str | None:
    """COMPLETED: the element's result must be there, and the job's cache complete, before on_split_done."""
    result = read_result(slurm, record)
    if result is not None and result.get("status", 0) != 0:
        cancel_on_slurm(slurm, helpers.on_split_fail(session, split_id, result))
        return "failed:result"
    problem = "no result file" if result is None else _cache_problem(session, slurm, split_id)
    if problem is None:
        helpers.on_split_done(session, split_id, result)
        return "done"
    errors = note_cache_error(session, split_id) or 0
    if errors <= slurm.config.cache_errors:
        log.info("split %s completed but %s yet (check %d of %d)", split_id, problem, errors, slurm.config.cache_errors)
        return None
    cancel_on_slurm(slurm, helpers.on_split_fail(
        session, split_id, f"element {record.job_id} completed, but {problem} after {errors} checks"))
    return "failed:cache"


def _cache_problem(session: Session, slurm: Slurm, split_id: int) -> str | None:
    """None when this is not the job's last open split, or when every output's cache is complete."""
    split = session.get(JobSplit, split_id)
    siblings = split.job.splits
    if any(s.status != S.COMPLETED for s in siblings if s.id != split_id):
        return None
    for output in split.job.block.outputs:
        if not is_cache_complete(cache_path(output.hash), len(siblings), str(slurm.config.cache_root)):
            return f"the cache of output {output.hash[:12]} is incomplete"
    return None


def read_result(slurm: Slurm, record: SacctRecord) -> dict[str, Any] | None:
    """The element's result dict, or None when it wrote none (yet, or it was killed)."""
    return spool_files.read_result(_spool(slurm, record), record.array_task_id)


def _spool(slurm: Slurm, record: SacctRecord) -> Path:
    """The array's spool directory: its job name is its submission tag."""
    return spool_files.array_spool_dir(slurm.config.spool_dir, record.name)


def _stderr_of(slurm: Slurm, record: SacctRecord) -> str | None:
    path = _spool(slurm, record) / f"slurm-{record.array_job_id}_{record.array_task_id}.err"
    try:
        return path.read_text(errors="replace")[-20000:]
    except OSError:
        return None


def failure_result(verdict: Verdict, element: dict[str, Any] | None) -> dict[str, Any]:
    """BEAT's result dict for a failed element: Slurm's reason as system error, the element's own details kept."""
    result: dict[str, Any] = {"status": verdict.exit_code or 1, "stdout": "", "stderr": "", "user_error": None,
                              "system_error": verdict.message, "timed_out": verdict.timed_out, "statistics": {}}
    if element:
        for key in ("stdout", "stderr", "user_error", "statistics"):
            result[key] = element.get(key) or result[key]
        if element.get("system_error"):
            result["system_error"] = f"{verdict.message}\n{element['system_error']}"
    return result


def _missing(split: Active, now: float, report: PollReport) -> None:
    """Known to neither squeue nor sacct: not recorded yet (never done, never failed); warn past the grace period."""
    submitted = split.submit_time
    age = now - submitted.replace(tzinfo=timezone.utc).timestamp() if submitted else 0.0
    if age > MISSING_GRACE:
        log.warning("split %s (%s) submitted %.0f s ago is still unknown to squeue and sacct", split.id, split.slurm_element_id, age)
        report.missing.append(split.id)


def _local(utc_naive: datetime) -> datetime:
    """Our timestamps are naive UTC; sacct -S takes the cluster's local time."""
    return utc_naive.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


