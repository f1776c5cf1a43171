"""One poll: every active split's Slurm state in one status call, then a decision for each split that changed.

Active means submitted (an element id) and not final: queued, processing or
cancelling. The Slurm client answers with one squeue for every active array and
sacct only for elements squeue has forgotten (bridge.slurm_client); this module
decides what each record means (poller.decide: poller.states, the element's
result file, the cache) and hands the decision to bridge.slurm_events, which
applies it in one transaction. Every callback is a guarded transition, so
reading the same state again (after a crash, a restart, or simply the next
cycle) changes nothing. Nothing is scancelled here: a failure or cancel leaves
siblings cancelling in the database, and the cycle's one scancel reads them
from there.

The daemon keeps the active splits in memory between polls (poller.memory):
a poll where neither Slurm nor the database changed reads one row of the
database and touches nothing. Pending elements need nothing; only elements
with a record (running, or finished and still known to squeue) and elements
Slurm does not show are looked at one by one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import timezone

from sqlalchemy.orm import Session

from bridge.backend import Backend
from bridge.errors import PollError
from bridge.models import SplitStatus as S
from bridge.sacct import SlurmRecord
from bridge.slurm_client import StatusView
from bridge.slurm_events import apply_slurm_state
from poller.decide import decide, facts_of
from poller.memory import Active, ActiveMemory, active_splits
from poller.states import TERMINAL, Outcome, known_state, outcome_of
from poller.unknown import UnknownStates

__all__ = ["Active", "PollError", "PollReport", "active_splits", "poll_once", "read_states"]

log = logging.getLogger(__name__)

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
    applied: int = 0  # splits whose record changed or owed a callback: one transaction each
    ended: list[tuple[str, int]] = field(default_factory=list)  # (tag, index): ended while Slurm shows them running

    @property
    def changed(self) -> bool:
        return bool(self.events)


def read_states(backend: Backend, memory: ActiveMemory, report: PollReport) -> tuple[StatusView, list[Active]]:
    """Slurm's view of the memory's splits (squeue, sacct for what it forgot) and the splits it does not show.

    PollError when neither source answers.
    """
    view = backend.client.status(memory)
    report.squeue_calls += view.squeue_calls
    report.sacct_calls += view.sacct_calls
    unseen = view.unseen(view.missing)  # of those squeue did not show, those sacct did not show either
    if view.sacct_error is not None:
        if view.squeue_error is not None:
            raise PollError(f"squeue failed ({view.squeue_error}) and sacct failed: {view.sacct_error}")
        if not (view.records or view.pending):  # no source knows anything: an outage, so back off
            raise PollError(f"squeue knows none of the {len(view.missing)} active elements, "
                            f"and sacct failed: {view.sacct_error}")
        log.warning("%d elements unknown to squeue, and sacct failed: %s", len(unseen), view.sacct_error)
    found = never_started(view.bare, unseen)
    view.records.update(found)
    return view, [split for split in unseen if split.slurm_element_id not in found]


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
              watch: UnknownStates | None = None, memory: ActiveMemory | None = None,
              finished: AbstractSet[tuple[str, int]] = frozenset()) -> PollReport:
    """Read every active split's state (one squeue, sacct for what it forgot) and fire the callbacks.

    `watch` remembers unknown Slurm states across polls, `memory` the active
    splits (poller.memory): the daemon's; fresh ones when not given (everything
    read from the database). `finished`: the (tag, array index) of elements
    whose result file is there (poller.early): one Slurm still shows running
    is looked at again, and ends with a successful result (bridge.handover).
    Raises PollError, changing nothing, when neither answers.
    """
    memory = memory if memory is not None else ActiveMemory()
    try:
        return _poll(session, backend, now, watch if watch is not None else UnknownStates(), memory, finished)
    except BaseException:
        memory.invalidate()  # whatever was applied before the error: read everything again
        raise


def _poll(session: Session, backend: Backend, now: float | None, watch: UnknownStates,
          memory: ActiveMemory, finished: AbstractSet[tuple[str, int]]) -> PollReport:
    report = PollReport()
    splits = memory.read(session)
    report.active = len(splits)
    if not splits:
        watch.keep_only(())
        return report
    view, unseen = read_states(backend, memory, report)
    wall = now if now is not None else time.time()
    unknown: list[int] = []
    for split, record in _to_look_at(splits, view.records, unseen):
        if record is None:
            unknown.append(split.id)  # its unknown-state clock keeps running while it is not seen
            _missing(split, wall, report)
            continue
        if not known_state(record.state):
            unknown.append(split.id)
            if watch.overdue(split.id, split.slurm_element_id, record.state_text, wall):
                report.unknown.append((split.id, record.state_text))
        result_seen = (record.name, record.array_task_id) in finished
        if record.state_text == split.slurm_state and not (result_seen or _actionable(split.status, record.state)):
            continue  # seen before, and nothing is owed for it
        report.applied += 1
        action = decide(session, backend, split, record, result_there=result_seen)
        settled = apply_slurm_state(session, split.id, facts_of(record), action)
        memory.applied(split.id, settled.event)
        if settled.event is not None:
            report.events.append((split.id, settled.event))
            if result_seen and not settled.event.startswith("started"):  # it may be lingering: released
                report.ended.append((record.name, record.array_task_id))  # once the cycle has submitted
    watch.keep_only(unknown)
    return report


def _to_look_at(splits: Mapping[str, Active], records: Mapping[str, SlurmRecord],
                unseen: Iterable[Active]) -> list[tuple[Active, SlurmRecord | None]]:
    """The splits with a record, and those Slurm does not show (record None), in split id order.

    Pending elements are left out: nothing is done for them. Records of
    elements no longer active (finished, still shown by squeue) are dropped.
    """
    found: list[tuple[Active, SlurmRecord | None]] = [
        (splits[element], record) for element, record in records.items() if element in splits]
    found += [(split, None) for split in unseen]
    found.sort(key=lambda pair: pair[0].id)
    return found


def _actionable(status: str, state: str) -> bool:
    """Whether a split in `status` may owe a callback for a Slurm state it has already recorded."""
    outcome = outcome_of(state)
    return outcome in TERMINAL or (outcome is Outcome.STARTED and status == S.QUEUED)


def _missing(split: Active, now: float, report: PollReport) -> None:
    """Known to neither squeue nor sacct: not recorded yet (never done, never failed); warn past the grace period."""
    submitted = split.submit_time
    age = now - submitted.replace(tzinfo=timezone.utc).timestamp() if submitted else 0.0
    if age > MISSING_GRACE:
        log.warning("split %s (%s) submitted %.0f s ago is still unknown to squeue and sacct", split.id,
                    split.slurm_element_id, age)
        report.missing.append(split.id)
