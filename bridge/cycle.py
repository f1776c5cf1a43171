"""The bridge's cycle, sequenced in one place: poll -> callbacks -> split -> submit -> release -> cancel -> snapshots.

`beat-bridge run` (each cycle of the daemon, and `--once`) and `beat-bridge
submit` run this one function. It reads Slurm first, so a job that finished
unblocks its dependents and they are split and submitted in the same cycle;
then the elements whose splits ended are released (bridge.handover), so that
their ends run slurmctld's scheduler while those dependents are queued.
Every element that must stop (siblings of failed splits, splits of cancelled
experiments, arrays of a job whose later array Slurm refused) is cancelling in
the database by the end of the cycle, and goes into one scancel then: those
Slurm has not reported final, so a lost scancel is sent again next cycle and
a finished element is never scancelled. The poll itself is the poller's
(poller.poll.poll_once), passed in by poller.loop: bridge/ does not import
poller/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.orm import Session

from bridge import claims, handover, snapshots, spool_retention
from bridge.backend import Backend
from bridge.cancelling import process_newly_cancelled_experiments
from bridge.errors import PollError
from bridge.scheduling import split_new_jobs
from bridge.submission_db import scancel_targets
from bridge.submit import SpoolUnavailable, Submission, submit_candidates

log = logging.getLogger(__name__)


class PollResult(Protocol):
    """What the cycle needs of a poll's report (poller.poll.PollReport)."""

    active: int
    squeue_calls: int
    sacct_calls: int
    events: list[tuple[int, str]]  # (split id, what happened)
    ended: list[tuple[str, int]]  # (submission tag, array index): ended, perhaps waiting for their release
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
    cancelled_tags: list[str] = field(default_factory=list)  # `scancel --name`: array ids never learnt
    stuck: list[str] = field(default_factory=list)  # tags whose sbatch outcome is unknown for too long
    accounting: snapshots.SnapshotRound | None = None  # the accounting snapshots read at the cycle's end
    error: str | None = None

    @property
    def busy(self) -> bool:
        """Work is moving: something changed, or something is on Slurm."""
        return bool(self.submitted or self.cancelled or (self.poll and (self.poll.changed or self.poll.active)))


def run_cycle(session: Session, backend: Backend, poll: Poll, read_snapshots: bool = True) -> CycleReport:
    """One cycle: poll Slurm and fire the callbacks, split new jobs, submit arrays, one scancel, snapshots.

    A poll that cannot read Slurm (PollError) changes nothing and is reported;
    the rest of the cycle still runs. The scancel comes after submitting, when
    everything this cycle decided to stop is known (bridge.submission_db.scancel_targets);
    a cancelled claim whose array id was never learnt is scancelled by its tag.
    Accounting snapshots are read last (bridge.snapshots), so their sacct call
    never delays a dependent's submission; the daemon passes read_snapshots=False
    and reads them while it waits between cycles instead (poller.loop).
    """
    report = CycleReport(poll=None)
    try:
        report.poll = poll(session, backend)
    except PollError as e:
        session.rollback()
        report.error = str(e)
    if report.poll is not None and any(not what.startswith("started") for _, what in report.poll.events):
        backend.pressure.room_freed()  # an element ended: a full submit limit may have room again
    config = backend.config
    split_new_jobs(session, str(config.cache_root), config.split_errors)
    process_newly_cancelled_experiments(session)
    try:
        report.submitted, _ = submit_candidates(session, backend)  # refused siblings: cancelling, in the scancel
    except SpoolUnavailable as e:  # a disk problem: loudly, and the loop backs off; no split is failed
        log.error("%s", e)
        report.error = str(e)
    if report.poll is not None and report.poll.ended:  # after the submission: their ends start it (bridge.handover)
        handover.release(config.spool_dir, report.poll.ended)
    ids, tags = scancel_targets(session)
    if ids:
        report.cancelled = backend.client.cancel(ids)
    if tags:
        report.cancelled_tags = backend.client.cancel_by_name(tags)
    if read_snapshots and report.poll is not None:  # last: its sacct never delays new work; none unless due
        report.accounting = snapshots.refresh(session, backend.client)
    if spool_retention.due(config.spool_dir):
        spool_retention.sweep(session, config.spool_dir, config.spool_retention_hours)
    claims.newly_stuck(session, config.claims)
    report.stuck = claims.stuck(session)
    return report
