"""One poll: every active split's Slurm state in one status call, then one decision per split.

Active means submitted (an element id) and not final: queued, processing or
cancelling. The Slurm client answers with one squeue for every active array and
sacct only for elements squeue has forgotten (bridge.slurm_client); this module
decides what each record means (poller.states, the element's result file, the
cache) and hands the decision to bridge.slurm_events, which applies it in one
transaction. Every callback is a guarded transition, so reading the same state
again (after a crash, a restart, or simply the next cycle) changes nothing.
Nothing is scancelled here: a failure or cancel leaves siblings cancelling in the
database, and the cycle's one scancel reads them from there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from bridge.backend import Backend
from bridge.cache import is_cache_complete
from bridge.errors import PollError
from bridge.failure_policy import OnFailure
from bridge.hashing import cache_path
from bridge.models import ACTIVE_SPLIT, JobSplit
from bridge.models import SplitStatus as S
from bridge.results import beat_result, failure_result, result_problem
from bridge.sacct import SlurmRecord
from bridge.sbatch_scripts import spool as spool_files
from bridge.slurm_client import StatusView
from bridge.slurm_events import Action, Kind, SlurmFacts, apply_slurm_state
from poller.states import TERMINAL, Outcome, judge, known_state, outcome_of
from poller.unknown import UnknownStates

log = logging.getLogger(__name__)

STDERR_TAIL = 65536  # bytes of an element's stderr read for slurmstepd's kill lines (they come last)
MISSING_GRACE = 60.0  # seconds a submitted element may be unknown to squeue and sacct before we warn


@dataclass
class PollReport:
    """What one poll saw and did."""

    active: int = 0
    squeue_calls: int = 0
    sacct_calls: int = 0
    events: list[tuple[int, str]] = field(default_factory=list)  # (split id, outcome)
    missing: list[int] = field(default_factory=list)
    unknown: list[tuple[int, str]] = field(default_factory=list)  # (split id, state) unknown past the bound

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
    JobSplit.slurm_element_id.is_not(None), JobSplit.status.in_(sorted(ACTIVE_SPLIT)),
).order_by(JobSplit.id)


def active_splits(session: Session) -> list[Active]:
    """Every submitted, non-final split: what the poller adopts on every cycle (and after a restart).

    Plain tuples, not ORM objects, and the status as its letter (indexed column):
    most splits need nothing done.
    """
    return [Active._make(row) for row in session.execute(_ACTIVE).tuples()]


def read_states(backend: Backend, splits: Sequence[Active], report: PollReport) -> StatusView:
    """Slurm's view of the splits (squeue, sacct for what it forgot); PollError when neither answers."""
    view = backend.client.status(splits)
    report.squeue_calls += view.squeue_calls
    report.sacct_calls += view.sacct_calls
    if view.sacct_error is not None:
        if view.squeue_error is not None:
            raise PollError(f"squeue failed ({view.squeue_error}) and sacct failed: {view.sacct_error}")
        if not (view.records or view.pending):  # no source knows anything: an outage, so back off
            raise PollError(f"squeue knows none of the {len(splits)} active elements, "
                            f"and sacct failed: {view.sacct_error}")
        log.warning("%d elements unknown to squeue, and sacct failed: %s", len(view.unseen(splits)),
                    view.sacct_error)
    view.records.update(never_started(view.bare, view.unseen(splits)))
    return view


def never_started(rows: Iterable[SlurmRecord], splits: Sequence[Active]) -> dict[str, SlurmRecord]:
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


def poll_once(session: Session, backend: Backend, now: float | None = None,
              watch: UnknownStates | None = None) -> PollReport:
    """Read every active split's state (one squeue, sacct for what it forgot) and fire the callbacks.

    `watch` remembers unknown Slurm states across polls (the daemon's; a fresh
    one when not given). Raises PollError, changing nothing, when neither answers.
    """
    report = PollReport()
    watch = watch if watch is not None else UnknownStates()
    splits = active_splits(session)
    report.active = len(splits)
    if not splits:
        watch.keep_only(())
        return report
    view = read_states(backend, splits, report)
    wall = now if now is not None else time.time()
    for split in splits:
        record = view.records.get(split.slurm_element_id)
        if record is None:
            if split.slurm_element_id not in view.pending:
                _missing(split, wall, report)
            continue
        if not known_state(record.state) and watch.overdue(split.id, split.slurm_element_id,
                                                           record.state_text, wall):
            report.unknown.append((split.id, record.state_text))
        if record.state_text == split.slurm_state and not _actionable(split.status, record.state):
            continue  # seen before, and nothing is owed for it
        settled = apply_slurm_state(session, split.id, facts_of(record), decide(session, backend, split, record))
        if settled.event is not None:
            report.events.append((split.id, settled.event))
    watch.keep_only(s.id for s in splits if _maybe_unknown(view, s.slurm_element_id))
    return report


def _maybe_unknown(view: StatusView, element_id: str) -> bool:
    """Whether a split's unknown-state clock keeps running: still unknown, or not seen this time."""
    record = view.records.get(element_id)
    if record is None:
        return element_id not in view.pending
    return not known_state(record.state)


def _actionable(status: str, state: str) -> bool:
    """Whether a split in `status` may owe a callback for a Slurm state it has already recorded."""
    outcome = outcome_of(state)
    return outcome in TERMINAL or (outcome is Outcome.STARTED and status == S.QUEUED)


def facts_of(record: SlurmRecord) -> SlurmFacts:
    """What a split keeps of a record; End only once terminal (squeue's End of a running job is a forecast)."""
    terminal = outcome_of(record.state) in TERMINAL
    return SlurmFacts(record.state_text, f"{record.exit_code}:{record.signal}", record.node_list or None,
                      record.start, record.end if terminal else None)


def decide(session: Session, backend: Backend, split: Active, record: SlurmRecord) -> Action:
    """What one record means for one split: pure but for reading the result file and the cache."""
    verdict = judge(record.state, record.exit_code, record.signal,
                    _stderr_of(backend, record) if record.state == "FAILED" else None)
    if verdict.outcome is Outcome.ACTIVE:
        return Action(Kind.RECORD)
    if verdict.terminal and record.end is None:
        return Action(Kind.RECORD)  # terminal rows without End are not settled yet (slurm-notes.md)
    if verdict.outcome is Outcome.STARTED:
        return Action(Kind.STARTED)
    if verdict.outcome is Outcome.CANCELLED:
        return Action(Kind.CANCELLED)
    if verdict.outcome is Outcome.FAILED:
        result = failure_result(verdict.exit_code, verdict.message, verdict.timed_out, read_result(backend, record))
        return Action(Kind.FAILED, result, f"failed:{verdict.reason}", reason=verdict.reason,
                      rules=failure_rules(backend, verdict.reason))
    return _completed(session, backend, split.id, record)


def failure_rules(backend: Backend, reason: str | None) -> dict[str, OnFailure]:
    """Each queue's rule for this failure (queues.toml's on_node_fail, ...): empty when none resubmits it."""
    found = {name: queue.failures.for_reason(reason) for name, queue in backend.config.queues.items()}
    return {name: rule for name, rule in found.items() if rule is not None}


def _completed(session: Session, backend: Backend, split_id: int, record: SlurmRecord) -> Action:
    """COMPLETED: the element's result must be there, and the job's cache complete, before on_split_done.

    A result file not there (yet: the shared file system may lag) is checked
    again on the next cycles, up to cache_errors times, then the split fails
    naming the file; an unreadable one fails it at once (read_result).
    """
    result = read_result(backend, record)
    if result is not None and result.get("status", 0) != 0:
        return Action(Kind.FAILED, result, "failed:result")
    if result is None:
        problem: str | None = f"no result file {result_path(backend, record)}"
    else:
        problem = _cache_problem(session, backend, split_id)
    if problem is None:
        return Action(Kind.DONE, result)
    return Action(Kind.CACHE_PENDING, problem=problem, cache_limit=backend.config.cache_errors)


def _cache_problem(session: Session, backend: Backend, split_id: int) -> str | None:
    """None when this is not the job's last open split, or when every output's cache is complete."""
    split = session.get(JobSplit, split_id)
    if split is None:
        return None
    siblings = split.job.splits
    if any(s.status != S.COMPLETED for s in siblings if s.id != split_id):
        return None
    for output in split.job.block.outputs:
        if not is_cache_complete(cache_path(output.hash), len(siblings), str(backend.config.cache_root)):
            return f"the cache of output {output.hash[:12]} is incomplete"
    return None


def read_result(backend: Backend, record: SlurmRecord) -> dict[str, Any] | None:
    """The element's result dict, or None when it wrote none (yet, or it was killed).

    A file that cannot be read, is not JSON, or holds values of the wrong type
    gives a failed result whose system error names the file (and the key).
    """
    result = spool_files.read_result(_spool(backend, record), record.array_task_id)
    problem = None if result is None else result_problem(result)
    if problem is not None:
        return beat_result(status=1, system_error=f"result file {result_path(backend, record)}: {problem}")
    return result


def result_path(backend: Backend, record: SlurmRecord) -> Path:
    return spool_files.result_file(_spool(backend, record), record.array_task_id)


def _spool(backend: Backend, record: SlurmRecord) -> Path:
    """The array's spool directory: its job name is its submission tag."""
    return spool_files.array_spool_dir(backend.config.spool_dir, record.name)


def _stderr_of(backend: Backend, record: SlurmRecord) -> str | None:
    """The tail of the element's --error file, where slurmstepd writes why it killed it (poller.states)."""
    path = _spool(backend, record) / f"slurm-{record.array_job_id}_{record.array_task_id}.err"
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, 2) - STDERR_TAIL))
            return file.read().decode(errors="replace")
    except OSError:
        return None


def _missing(split: Active, now: float, report: PollReport) -> None:
    """Known to neither squeue nor sacct: not recorded yet (never done, never failed); warn past the grace period."""
    submitted = split.submit_time
    age = now - submitted.replace(tzinfo=timezone.utc).timestamp() if submitted else 0.0
    if age > MISSING_GRACE:
        log.warning("split %s (%s) submitted %.0f s ago is still unknown to squeue and sacct", split.id,
                    split.slurm_element_id, age)
        report.missing.append(split.id)
