"""The bridge's cycle and its daemon: poll -> callbacks -> split -> cancel -> submit; adaptive interval.

`run_cycle` is the one place the cycle is sequenced (`beat-bridge run`, its
`--once`, and `beat-bridge submit` all call it). It reads Slurm first, so a job
that finished unblocks its dependents and they are split and submitted in the
same cycle; every element the cycle's callbacks and cancelled experiments want
stopped goes into one scancel before new arrays go out. The interval is the configured
minimum while anything is on Slurm or anything changed, and doubles up to the
maximum while idle or while Slurm answers with errors (slurmdbd down: nothing is
changed, and the loop recovers by itself when it returns).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from bridge.backend import Backend
from bridge.cancelling import process_newly_cancelled_experiments
from bridge.config import PollConfig
from bridge.errors import BridgeError
from bridge.scheduling import split_new_jobs
from bridge.submission_db import element_ids
from bridge.submit import Submission, submit_candidates
from poller.poll import PollError, PollReport, poll_once

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one cycle did."""

    poll: PollReport | None
    submitted: list[Submission] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # element ids scancelled
    error: str | None = None

    @property
    def busy(self) -> bool:
        """Work is moving: something changed, or something is on Slurm."""
        return bool(self.submitted or self.cancelled or (self.poll and (self.poll.changed or self.poll.active)))


@dataclass
class Interval:
    """The wait before the next cycle: minimum while busy, doubling to the maximum while idle or failing."""

    config: PollConfig
    current: float = 0.0

    def next(self, busy: bool, failed: bool) -> float:
        if busy and not failed:
            self.current = self.config.min_interval
        else:
            self.current = min(self.config.max_interval, max(self.current, self.config.min_interval) * 2)
        return self.current


def run_cycle(session: Session, backend: Backend) -> CycleReport:
    """One cycle: poll Slurm and fire the callbacks, split new jobs, scancel, submit arrays.

    A poll that cannot read Slurm (PollError) changes nothing and is reported;
    the rest of the cycle still runs. The elements to cancel (siblings of failed
    splits, splits of cancelling experiments) go out in one scancel before
    submitting; siblings of splits whose submission Slurm refused, in one more.
    """
    report = CycleReport(poll=None)
    to_cancel: list[str] = []
    try:
        report.poll = poll_once(session, backend)
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


class BridgeLoop:
    """Cycles until stopped (SIGTERM/SIGINT call stop()) or until `done` says so."""

    def __init__(self, sessions: sessionmaker[Session], backend: Backend, poll: PollConfig,
                 on_cycle: Callable[[Session, CycleReport], None] | None = None) -> None:
        self.sessions, self.backend = sessions, backend
        self.interval = Interval(poll)
        self.on_cycle = on_cycle
        self._stop = threading.Event()
        self.cycles = self.squeue_calls = self.sacct_calls = self.failures = 0

    def stop(self, *_: object) -> None:
        """Finish the current cycle, then return from run()."""
        self._stop.set()

    def run(self, done: Callable[[Session], bool] | None = None, once: bool = False) -> None:
        """Run cycles until stop(), `done(session)` is true, or after one cycle with once=True."""
        while not self._stop.is_set():
            with self.sessions() as session:
                report = self._cycle(session)
                if self.on_cycle:
                    self.on_cycle(session, report)
                if once or (done is not None and done(session)):
                    return
            wait = self.interval.next(report.busy, report.error is not None)
            if report.error:
                log.error("Slurm did not answer (%s): nothing changed; next try in %.1f s", report.error, wait)
            self._stop.wait(wait)

    def _cycle(self, session: Session) -> CycleReport:
        started = time.monotonic()
        try:
            report = run_cycle(session, self.backend)
        except BridgeError as e:  # sbatch/scancel errors already handled per array; anything else: retry later
            session.rollback()
            report = CycleReport(poll=None, error=str(e))
        self.cycles += 1
        if report.poll:
            self.squeue_calls += report.poll.squeue_calls
            self.sacct_calls += report.poll.sacct_calls
        self.failures += report.error is not None
        log.debug("cycle %d in %.3f s: %s", self.cycles, time.monotonic() - started, report)
        return report
