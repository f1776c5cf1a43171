"""The bridge daemon: the cycle (bridge.cycle, with this poller's poll) in a loop; adaptive interval; clean stop.

`run_cycle` is what `beat-bridge run`, its `--once`, and `beat-bridge submit`
run: bridge.cycle.run_cycle with poller.poll.poll_once. The interval is the configured
minimum while anything is on Slurm or anything changed, and doubles up to the
maximum while idle or while Slurm or the database answer with errors (slurmdbd
down: nothing is changed; the database lost mid-cycle: the cycle's open
transaction is rolled back). Either way the loop recovers by itself when they
return: every cycle reads its work afresh from the database (active splits,
claims without an array id, runnable jobs), so a failed cycle loses nothing.

Between cycles the loop does not just sleep: another process's commit (bridge.wake)
or a result file of an active element (poller.early) starts the next cycle at once,
so new work and ends wait for no interval, while Slurm is polled no faster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from bridge import cycle, heartbeat, snapshots, wake
from bridge.backend import Backend
from bridge.config import PollConfig
from bridge.cycle import CycleReport
from bridge.errors import BridgeError, PollError
from poller.early import EARLY_GAP, RESULT_TICK, ResultWatch, wait_for_results
from poller.memory import ActiveMemory
from poller.poll import PollReport, poll_once
from poller.sessions import closing_quietly, database_error, discard
from poller.unknown import UnknownStates

if TYPE_CHECKING:  # imported by `run` only when [metrics] is configured
    from bridge.metrics import Metrics

__all__ = ["BridgeLoop", "CycleReport", "Interval", "closing_quietly", "database_error", "discard", "run_cycle"]

log = logging.getLogger(__name__)

SNAPSHOTS_DEFERRED_AT_MOST = 20.0  # seconds accounting snapshots wait while result files are watched


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


def run_cycle(session: Session, backend: Backend, watch: UnknownStates | None = None,
              read_snapshots: bool = True, skip_poll: PollReport | None = None,
              memory: ActiveMemory | None = None,
              finished: AbstractSet[tuple[str, int]] = frozenset()) -> CycleReport:
    """The cycle (bridge.cycle) with this poller's poll: what `run`, `run --once` and `submit` do.

    `watch` is the daemon's memory of unknown Slurm states across cycles (poller.unknown),
    `memory` its memory of the active splits (poller.memory); the daemon reads
    accounting snapshots between cycles (read_snapshots=False here).
    With `skip_poll` (a cycle woken by a database change soon after a poll), Slurm is
    not asked: that report stands for the poll, and the cycle only splits, submits and cancels.
    `finished`: the elements whose result file the daemon has seen (poller.early, bridge.handover).
    """
    poll = (partial(logged_poll, watch=watch, memory=memory, finished=finished) if skip_poll is None
            else (lambda s, b: skip_poll))
    return cycle.run_cycle(session, backend, poll, read_snapshots)


def logged_poll(session: Session, backend: Backend, watch: UnknownStates | None = None,
                memory: ActiveMemory | None = None,
                finished: AbstractSet[tuple[str, int]] = frozenset()) -> PollReport:
    """poll_once between two DEBUG lines, the second saying its transactions are over.

    With the runner's DEBUG line of the squeue call between them, they bracket
    the poll's window between reading Slurm and committing the callbacks: a log
    tells whether a process killed there died inside it
    (tests/integration/kill_windows.py).
    """
    log.debug("poll begins")
    try:
        report = poll_once(session, backend, watch=watch, memory=memory, finished=finished)
    except PollError:
        log.debug("poll over: Slurm unreadable, nothing changed")
        raise
    log.debug("poll over: %d active, %d events committed", report.active, len(report.events))
    return report


class BridgeLoop:
    """Cycles until stopped (SIGTERM/SIGINT call stop()) or until `done` says so."""

    def __init__(self, sessions: sessionmaker[Session], backend: Backend, poll: PollConfig,
                 on_cycle: Callable[[Session, CycleReport], None] | None = None,
                 metrics: Metrics | None = None, wake_on: wake.Wake | None = None) -> None:
        self.sessions, self.backend = sessions, backend
        self.interval = Interval(poll)
        self.on_cycle = on_cycle
        self._stop = threading.Event()
        self.cycles = self.squeue_calls = self.sacct_calls = self.failures = 0
        self.unknown = UnknownStates()
        self.memory = ActiveMemory()  # the active splits between polls; memory.invalidate() forces a full read
        self.unknown_states = 0  # splits in an unknown Slurm state past its bound, at the last poll
        self.stuck = 0  # submissions whose sbatch outcome is unknown past [claims] stuck_after, last cycle
        self.last_cycle_seconds = 0.0
        self.snapshot_sacct_calls = 0
        self.metrics = metrics  # bridge.metrics, when [metrics] is configured
        # waking between cycles (bridge.wake, poller.early): `wake` is the database's change signal
        self.wake = wake_on if wake_on is not None else wake.open_wake(sessions.kw["bind"])
        self.wake.exclude_own(sessions)  # this loop's own commits wake no one
        self.results = ResultWatch(backend.config.spool_dir)
        self.woken = {"database": 0, "result": 0}  # early cycles, by what woke them
        self._woke: str | None = None  # what ended the last wait early
        self._polled_at = -float("inf")  # monotonic time of the last poll that asked Slurm
        self._snapshots_deferred_since: float | None = None  # since when due snapshots wait for ends
        self._last_active = 0  # active splits at that poll

    def stop(self, *_: object) -> None:
        """Finish the current cycle, then return from run()."""
        self._stop.set()

    def run(self, done: Callable[[Session], bool] | None = None, once: bool = False) -> None:
        """Run cycles until stop(), `done(session)` is true, or after one cycle with once=True."""
        try:
            self._run(done, once)
        finally:
            self.wake.close()

    def _run(self, done: Callable[[Session], bool] | None, once: bool) -> None:
        while not self._stop.is_set():
            with closing_quietly(self.sessions()) as session:
                report = self._cycle(session, once)
                if not once:
                    self._watch_results(session, report)
                if self.on_cycle:
                    self.on_cycle(session, report)
                if self.metrics is not None:  # bridge.metrics: this cycle's figures, then the textfile; never raises
                    self.metrics.after_cycle(session, self, report)
                finished = once or (done is not None and done(session))
            wait = self.interval.next(report.busy, report.error is not None)
            if not once:  # `beat-bridge status` reads it (bridge.heartbeat): one UPDATE
                heartbeat.beat(self.sessions, report, self.cycles, self.last_cycle_seconds, wait)
            if report.error:
                log.error("cycle %d failed (%s): what it committed stays, the rest is read again from the "
                          "database next cycle%s", self.cycles, report.error,
                          "" if finished else f", in {wait:.1f} s")
            if finished:
                return
            self._wait(self._between_cycles(wait, report))
        heartbeat.stopped(self.sessions)  # stopped by stop() (SIGTERM): `beat-bridge status` says so at once

    def _between_cycles(self, wait: float, report: CycleReport) -> float:
        """Read due accounting snapshots (bridge.snapshots) in the wait, not in the cycle; the wait left.

        So their sacct call shifts neither the next poll nor a dependent's submission.
        While result files are watched (poller.early) they wait, SNAPSHOTS_DEFERRED_AT_MOST
        seconds at most: an element may end any moment, and its result is seen only
        after the call (sacct, ~0.2 s here, read the last level's snapshots just as the
        next level ended: bench/dag_latency.py). Snapshots are settled minutes later anyway.
        """
        if report.poll is None:  # Slurm or the database did not answer: not now
            return wait
        started = time.monotonic()
        if self.results.active:
            self._snapshots_deferred_since = self._snapshots_deferred_since or started
            if started - self._snapshots_deferred_since < SNAPSHOTS_DEFERRED_AT_MOST:
                return wait
        self._snapshots_deferred_since = None
        with closing_quietly(self.sessions()) as session:
            try:
                self.snapshot_sacct_calls += snapshots.refresh(session, self.backend.client).sacct_calls
            except Exception as e:  # never the daemon's end: the snapshots stay pending, read later
                log.warning("accounting snapshots not read this time: %s", e)
                discard(session)
        return max(0.0, wait - (time.monotonic() - started))

    # --- waking early (bridge.wake, poller.early): kept apart from the cycle ------------------------

    def _watch_results(self, session: Session, report: CycleReport) -> None:
        """Re-read which splits are active when that may have changed (poller.early); never raises."""
        changed = report.submitted or (report.poll is not None and report.poll.changed)
        if not (changed or self.results.unconfirmed() or self.cycles == 1):
            return
        try:
            self.results.refresh(session)
        except DBAPIError as e:  # the next cycle fails on it anyway, and refreshes after
            log.debug("active splits' spool directories not re-read: %s", database_error(e))
            discard(session)

    def _wait(self, seconds: float) -> None:
        """Sleep until the next cycle, cut short by another process's commit or an element's result file.

        Slurm is polled no faster for it: a database change costs no Slurm call
        to notice, and a result file one squeue (at most one per EARLY_GAP after
        the last poll began). The result files are looked at every RESULT_TICK
        while splits are watched, also at once when the wait begins: ends that
        came during the cycle (or the snapshots' sacct) wait for no tick. Their
        effect on the wait's length: poller.early.wait_for_results.
        """
        started = time.monotonic()
        seconds = wait_for_results(seconds, started, self._polled_at, self.results.seen_since(self._polled_at),
                                   self.results.unconfirmed(started))
        tick = RESULT_TICK if self.results.active else wake.TICK
        self.wake.mark()
        self._woke = woke = None
        while not self._stop.is_set():
            now = time.monotonic()
            if now - started >= seconds:
                return
            if woke is None and now - self._polled_at >= EARLY_GAP and self.results.new_results():
                woke = "result"
            elif self.wake.wait(min(tick, seconds - (now - started)), self._stop):
                woke = woke or "database"
            # a commit wakes EARLY_GAP after the wait began at the soonest, a result file after the last poll began
            ready = (started if woke == "database" else self._polled_at) + EARLY_GAP
            if woke is not None and time.monotonic() >= ready:
                self.woken[woke] += 1
                self._woke = woke
                log.debug("woken after %.2f s of %.2f s: %s", time.monotonic() - started, seconds,
                          "another process changed the database" if woke == "database"
                          else "an element wrote its result file")
                return

    def _skip_poll(self) -> PollReport | None:
        """For a cycle woken by a database change within min_interval of the last poll: no Slurm call.

        New work needs no squeue to be split and submitted, so another process's
        commits never make the daemon poll Slurm faster than min_interval.
        """
        if self._woke != "database" or time.monotonic() - self._polled_at >= self.interval.config.min_interval:
            return None
        return PollReport(active=self._last_active)

    def _cycle(self, session: Session, once: bool = False) -> CycleReport:
        started = time.monotonic()
        skip = self._skip_poll()
        try:
            report = run_cycle(session, self.backend, self.unknown, read_snapshots=once, skip_poll=skip,
                               memory=self.memory, finished=self.results.finished())
        except BridgeError as e:  # sbatch/scancel errors already handled per array; anything else: retry later
            session.rollback()
            report = CycleReport(poll=None, error=str(e))
        except DBAPIError as e:  # connection lost (server restart, backend terminated), SQLite locked: retry later
            discard(session)
            report = CycleReport(poll=None, error=database_error(e))
        except AssertionError:  # a broken invariant: better stopped than going on with it
            raise
        except Exception as e:  # a bug: loud, with its traceback, but the daemon keeps its other work going
            log.exception("cycle %d: unexpected error; the cycle is rolled back and retried", self.cycles + 1)
            discard(session)
            report = CycleReport(poll=None, error=f"unexpected {type(e).__name__}: {e}")
        self.cycles += 1
        if report.poll is not None and skip is None:
            self._polled_at, self._last_active = started, report.poll.active
        if report.poll:
            self.squeue_calls += report.poll.squeue_calls
            self.sacct_calls += report.poll.sacct_calls
            self.unknown_states = len(report.poll.unknown)
        self.failures += report.error is not None
        if report.accounting is not None:  # run --once reads the snapshots inside its one cycle
            self.snapshot_sacct_calls += report.accounting.sacct_calls
        if report.stuck and len(report.stuck) != self.stuck:
            log.warning("%d submissions stuck (sbatch's outcome unknown): %s", len(report.stuck),
                        ", ".join(report.stuck))
        if report.error is None or report.stuck:  # a cycle that raised never got to look
            self.stuck = len(report.stuck)
        self.last_cycle_seconds = time.monotonic() - started
        log.debug("cycle %d in %.3f s: %s", self.cycles, self.last_cycle_seconds, report)
        return report
