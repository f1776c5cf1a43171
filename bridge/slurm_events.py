"""What Slurm says of one split, applied in one transaction: its Slurm facts, its start, its outcome.

The poller decides (poller.poll: Slurm state, result file, cache check) and
hands one Action per split here; the split's Slurm state, exit code, times and
node, on_split_started when it was still queued, and on_split_done / fail /
cancelled are then one locked transaction (bridge.history), not one each: a
split first seen COMPLETED costs one commit. A split gone or no longer active
changes nothing (a repeated or late event). The split that becomes final here
gets its pending accounting snapshot in the same transaction (bridge.snapshots).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.failure_policy import OnFailure
from bridge.history import guarded_set, locked
from bridge.models import ACTIVE_SPLIT, Job, JobSplit, SplitStatus
from bridge.outcomes import cancel_split, complete_split, fail_split, load_split, start_split
from bridge.resubmission import start_again, try_resubmit
from bridge.snapshots import record_settled
from bridge.submission_db import set_slurm_facts

log = logging.getLogger(__name__)

S = SplitStatus


class Kind(str, enum.Enum):
    """What the poller concluded for one split."""

    RECORD = "record"  # still pending, or not settled yet: the Slurm facts only
    STARTED = "started"  # on_split_started
    DONE = "done"  # on_split_done (result read, cache verified)
    FAILED = "failed"  # on_split_fail
    CANCELLED = "cancelled"  # on_split_cancelled
    CACHE_PENDING = "cache_pending"  # COMPLETED, but its result or cache is not there (yet)


@dataclass(frozen=True)
class SlurmFacts:
    """The fields of one Slurm record the split keeps (None: leave as it is)."""

    state_text: str  # as printed: "CANCELLED by 0"
    exit_code: str  # "N:S"
    node: str | None = None
    start: datetime | None = None
    end: datetime | None = None  # only once terminal (squeue's End of a running job is a forecast)


@dataclass(frozen=True)
class Action:
    """The poller's decision for one split, with what the callback needs."""

    kind: Kind
    result: Mapping[str, Any] | str | None = None  # BEAT's result dict, or a system error
    label: str = ""  # what happened, for reports: "failed:timed_out"
    problem: str = ""  # CACHE_PENDING: what is missing
    cache_limit: int = 0  # CACHE_PENDING: checks before the split fails
    reason: str | None = None  # FAILED: Slurm's reason (poller.states): node_fail, out_of_memory, ...
    rules: Mapping[str, OnFailure] | None = None  # FAILED: the queues' rules for it (bridge.resubmission)


@dataclass
class Settled:
    """What applying one Action did: an event label, or None.

    Siblings a failure or cancel stops are left cancelling in the database; the
    cycle's one scancel reads them from there (bridge.submission_db.scancel_targets).
    """

    event: str | None = None


def apply_slurm_state(session: Session, split_id: int, facts: SlurmFacts, action: Action) -> Settled:
    """Record the facts and fire what `action` says, in one locked transaction."""
    with locked(session):
        row, job = load_split(session, split_id)
        if row is None or job is None or row.status not in ACTIVE_SPLIT:
            return Settled()
        if facts.state_text != row.slurm_state:
            set_slurm_facts(session, row, state=facts.state_text, exit_code=facts.exit_code,
                            start_time=facts.start, end_time=facts.end)
        if action.kind is Kind.RECORD:
            return Settled()
        started = _start(session, row, job, facts.node)
        settled = _outcome(session, row, job, action, started)
        record_settled(session, row, job, settled.event)  # final now: its snapshot, pending (no Slurm call)
        return settled


def _start(session: Session, row: JobSplit, job: Job, node: str | None) -> bool:
    """on_split_started and the node, once; also for an element first seen already finished.

    A later attempt of a resubmitted split (bridge.resubmission) starts without on_split_started:
    its job, block and experiment started with the first.
    """
    if row.status != S.QUEUED:
        return False
    node = node if node and node != "None assigned" else None
    if row.attempt > 1:
        start_again(session, row, node)
        moved = False
    else:
        moved = start_split(session, row, job)
    if node:
        set_slurm_facts(session, row, node=node)
    return moved


def _outcome(session: Session, row: JobSplit, job: Job, action: Action, started: bool) -> Settled:
    kind = action.kind
    if kind is Kind.STARTED:
        return Settled("started" if started else None)
    if kind is Kind.DONE:
        complete_split(session, row, job, action.result if not isinstance(action.result, str) else None)
        return Settled("done")
    if kind is Kind.CANCELLED:
        cancel_split(session, row, job)
        return Settled("cancelled")
    if kind is Kind.CACHE_PENDING:
        errors = row.cache_errors + 1
        guarded_set(session, row, JobSplit.cache_errors == row.cache_errors, source="cache_error",
                    cache_errors=errors)
        if errors <= action.cache_limit:
            log.info("split %s completed but %s yet (check %d of %d)", row.id, action.problem, errors,
                     action.cache_limit)
            return Settled()
        result: Mapping[str, Any] | str | None = (
            f"element {row.slurm_element_id} completed, but {action.problem} after {errors} checks")
        fail_split(session, row, job, result)
        return Settled("failed:cache")
    if action.rules and try_resubmit(session, row, job, action.reason, action.rules, _system_error(action.result)):
        return Settled(f"resubmitted:{action.reason}")
    fail_split(session, row, job, action.result)
    return Settled(action.label or "failed")


def _system_error(result: Mapping[str, Any] | str | None) -> str:
    if isinstance(result, str) or result is None:
        return result or ""
    return str(result.get("system_error") or "")
