"""The bridge daemon: the cycle (bridge.cycle, with this poller's poll) in a loop; adaptive interval; clean stop.

`run_cycle` is what `beat-bridge run`, its `--once`, and `beat-bridge submit`
run: bridge.cycle.run_cycle with poller.poll.poll_once. The interval is the configured
minimum while anything is on Slurm or anything changed, and doubles up to the
maximum while idle or while Slurm answers with errors (slurmdbd down: nothing is
changed, and the loop recovers by itself when it returns).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from bridge import cycle
from bridge.backend import Backend
from bridge.config import PollConfig
from bridge.cycle import CycleReport
from bridge.errors import BridgeError
from poller.poll import poll_once
from poller.unknown import UnknownStates

__all__ = ["BridgeLoop", "CycleReport", "Interval", "run_cycle"]

log = logging.getLogger(__name__)


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


def run_cycle(session: Session, backend: Backend, watch: UnknownStates | None = None) -> CycleReport:
    """The cycle (bridge.cycle) with this poller's poll: what `run`, `run --once` and `submit` do.

    `watch` is the daemon's memory of unknown Slurm states across cycles (poller.unknown).
    """
    return cycle.run_cycle(session, backend, partial(poll_once, watch=watch))


class BridgeLoop:
    """Cycles until stopped (SIGTERM/SIGINT call stop()) or until `done` says so."""

    def __init__(self, sessions: sessionmaker[Session], backend: Backend, poll: PollConfig,
                 on_cycle: Callable[[Session, CycleReport], None] | None = None) -> None:
        self.sessions, self.backend = sessions, backend
        self.interval = Interval(poll)
        self.on_cycle = on_cycle
        self._stop = threading.Event()
        self.cycles = self.squeue_calls = self.sacct_calls = self.failures = 0
        self.unknown = UnknownStates()
        self.unknown_states = 0  # splits in an unknown Slurm state past its bound, at the last poll

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
            report = run_cycle(session, self.backend, self.unknown)
        except BridgeError as e:  # sbatch/scancel errors already handled per array; anything else: retry later
            session.rollback()
            report = CycleReport(poll=None, error=str(e))
        self.cycles += 1
        if report.poll:
            self.squeue_calls += report.poll.squeue_calls
            self.sacct_calls += report.poll.sacct_calls
            self.unknown_states = len(report.poll.unknown)
        self.failures += report.error is not None
        log.debug("cycle %d in %.3f s: %s", self.cycles, time.monotonic() - started, report)
        return report
