"""The bridge's cycle, sequenced in one place: poll -> callbacks -> split -> cancel -> submit.

`beat-bridge run` (each cycle of the daemon, and `--once`) and `beat-bridge
submit` run this one function. It reads Slurm first, so a job that finished
unblocks its dependents and they are split and submitted in the same cycle;
every element the poll's callbacks and the cancelled experiments want stopped
goes into one scancel before new arrays go out. The poll itself is the
poller's (poller.poll.poll_once), passed in by poller.loop: bridge/ does not
import poller/.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.orm import Session

from bridge.backend import Backend
from bridge.cancelling import process_newly_cancelled_experiments
from bridge.errors import PollError
from bridge.scheduling import split_new_jobs
from bridge.submission_db import element_ids
from bridge.submit import Submission, submit_candidates


class PollResult(Protocol):
    """What the cycle needs of a poll's report (poller.poll.PollReport)."""

    active: int
    squeue_calls: int
    sacct_calls: int
    events: list[tuple[int, str]]  # (split id, what happened)
    to_cancel: list[str]
    unknown: list[tuple[int, str]]  # (split id, Slurm state) in a state unknown for too long (poller.unknown)

    @property
    def changed(self) -> bool: ...


Poll = Callable[[Session, Backend], PollResult]


@dataclass
class CycleReport:
    """What one cycle did."""

    poll: PollResult | None
    submitted: list[Submission] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # element ids scancelled
    error: str | None = None

    @property
    def busy(self) -> bool:
        """Work is moving: something changed, or something is on Slurm."""
        return bool(self.submitted or self.cancelled or (self.poll and (self.poll.changed or self.poll.active)))


def run_cycle(session: Session, backend: Backend, poll: Poll) -> CycleReport:
    """One cycle: poll Slurm and fire the callbacks, split new jobs, scancel, submit arrays.

    A poll that cannot read Slurm (PollError) changes nothing and is reported;
    the rest of the cycle still runs. The elements to cancel (siblings of failed
    splits, splits of cancelling experiments) go out in one scancel before
    submitting; siblings of splits whose submission Slurm refused, in one more.
    """
    report = CycleReport(poll=None)
    to_cancel: list[str] = []
    try:
        report.poll = poll(session, backend)
        to_cancel += report.poll.to_cancel
    except PollError as e:
        session.rollback()
        report.error = str(e)
    config = backend.config
    split_new_jobs(session, str(config.cache_root), config.split_errors)
    to_cancel += element_ids(process_newly_cancelled_experiments(session))
    if to_cancel:
        report.cancelled += backend.client.cancel(to_cancel)
    report.submitted, refused = submit_candidates(session, backend)
    if refused:
        report.cancelled += backend.client.cancel(refused)
    return report
