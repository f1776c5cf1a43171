"""The daemon's Prometheus metrics: a registry of its own, updated once per cycle, served and/or written.

`beat-bridge run` makes one `Metrics` when bridge.toml has a [metrics] table
(bridge.metrics_config): `instrument` puts a `MeteredRunner` around the Slurm
client's runner (every Slurm command's latency and errors, by command name) and
counts sbatch retries at the backend's backoff sleep (bridge.submit.sbatch_once,
bridge.retry); the loop (poller.loop) calls `after_cycle` once per cycle, which
sets everything else from the cycle's report, the loop's counts and one GROUP BY
over the split rows, then rewrites the textfile. prometheus_client's metrics are
thread-safe, so its HTTP server thread reads while the loop writes. Nothing here
may stop the daemon: a failed query or write is logged and the old values stay.
`beat-bridge reconcile` is a separate process: its gauges go to a textfile of
their own (`write_reconcile`). docs/metrics.md lists every metric.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, write_to_textfile
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from bridge.back_pressure import BackPressure
from bridge.backend import Backend
from bridge.config import BridgeConfig
from bridge.errors import BridgeError, CommandError, CommandTimeout
from bridge.metrics_config import reconcile_textfile
from bridge.models import Block, Job, JobSplit, Queue, SplitStatus
from bridge.runner import DEFAULT_TIMEOUT, CommandResult, Runner

log = logging.getLogger(__name__)

STATES = {status.value: status.name.lower() for status in SplitStatus}  # "N" -> "queued", ...
NO_QUEUE = "-"  # a block whose queue row was deleted (never a queue name: bridge.queues_config)
COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CYCLE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class LoopView(Protocol):
    """What after_cycle reads of the daemon's loop (poller.loop.BridgeLoop)."""

    last_cycle_seconds: float
    unknown_states: int
    stuck: int
    snapshot_sacct_calls: int


class ReportView(Protocol):
    """What after_cycle reads of a cycle's report (bridge.cycle.CycleReport)."""

    submitted: Sequence  # of bridge.submit.Submission: .queue, .split_ids
    error: str | None


class Metrics:
    """Every metric of the daemon in one CollectorRegistry (never prometheus_client's global one)."""

    def __init__(self, textfile: Path | None = None, process: bool = True) -> None:
        self.registry = r = CollectorRegistry()
        self.textfile = textfile
        self.server: WSGIServer | None = None  # start_metrics's HTTP server, when [metrics] listen is set
        if process:  # resident memory, CPU, open descriptors: what a months-long service leaks first
            ProcessCollector(namespace="beat_bridge", registry=r)
        self.splits = Gauge("beat_bridge_splits", "Split rows by BEAT state and queue (rows of jobs still alive: "
                            "a finished block's splits are deleted)", ["state", "queue"], registry=r)
        self.cycle_seconds = Histogram("beat_bridge_cycle_duration_seconds", "Duration of one cycle "
                                       "(poll, callbacks, split, submit, scancel)", buckets=CYCLE_BUCKETS, registry=r)
        self.cycle_failures = Counter("beat_bridge_cycle_failures", "Cycles that ended with an error "
                                      "(Slurm or the database unreadable, a spool problem, a bug)", registry=r)
        self.last_cycle = Gauge("beat_bridge_last_cycle_timestamp_seconds", "Unix time the last cycle ended",
                                registry=r)
        self.command_seconds = Histogram("beat_bridge_slurm_command_duration_seconds", "Wall time of one Slurm "
                                         "command, by command name", ["command"], buckets=COMMAND_BUCKETS, registry=r)
        self.command_errors = Counter("beat_bridge_slurm_command_errors", "Slurm commands that failed: reason "
                                      "exit (non-zero exit), timeout, or unreachable (could not be run, "
                                      "connection lost)", ["command", "reason"], registry=r)
        self.arrays = Counter("beat_bridge_submitted_arrays", "Job arrays submitted by a cycle (one found by "
                              "its tag only in a later cycle, after an unknown sbatch outcome, is not counted)",
                              ["queue"], registry=r)
        self.submitted_splits = Counter("beat_bridge_submitted_splits", "Splits submitted as array elements",
                                        ["queue"], registry=r)
        self.retries = Counter("beat_bridge_sbatch_retries", "sbatch runs repeated after a backoff "
                               "(it surely never reached slurmctld: [retry] in bridge.toml)", registry=r)
        self.stuck = Gauge("beat_bridge_stuck_submissions", "Submissions whose sbatch outcome is unknown past "
                           "[claims] stuck_after, at the last cycle", registry=r)
        self.unknown = Gauge("beat_bridge_unknown_state_splits", "Splits in a Slurm state the bridge does not "
                             "know, past its bound (poller.unknown), at the last poll", registry=r)
        self.snapshot_calls = Counter("beat_bridge_snapshot_sacct_calls", "sacct calls reading accounting "
                                      "snapshots (bridge.snapshots)", registry=r)
        self.limit_refusals = Counter("beat_bridge_submit_limit_refusals", "sbatch calls refused at a submit limit "
                                      "of an association or QOS (back-pressure: the splits stay queued)", registry=r)
        self.held_limits = Gauge("beat_bridge_held_submit_limits", "Account/QOS/partition keys held back at a full "
                                 "submit limit at the last cycle (bridge.back_pressure)", registry=r)
        self._pressure: BackPressure | None = None
        self._refusals_seen = 0
        self._snapshot_calls_seen = 0
        self._queues: set[str] = set()
        self._warned: dict[str, str] = {}

    # --- Slurm commands -----------------------------------------------------------------

    def instrument(self, backend: Backend) -> Backend:
        """The backend with every Slurm command metered and every sbatch retry counted; behaviour unchanged."""
        self._pressure = backend.pressure  # shared by the returned backend: its submit-limit refusals and holds
        return replace(backend.with_runner(MeteredRunner(backend.runner, self)),
                       sleep=self.counting_retries(backend.sleep))

    def counting_retries(self, sleep: Callable[[float], None]) -> Callable[[float], None]:
        """Backend.sleep waits only between sbatch attempts (bridge.submit.sbatch_once): each call is one retry."""
        def retry_sleep(seconds: float) -> None:
            self.retries.inc()
            sleep(seconds)
        return retry_sleep

    def command(self, argv: Sequence[str], seconds: float, reason: str | None) -> None:
        """One Slurm command ran for `seconds`; reason is None when it exited 0."""
        name = command_name(argv)
        self.command_seconds.labels(name).observe(seconds)
        if reason is not None:
            self.command_errors.labels(name, reason).inc()

    # --- the cycle ----------------------------------------------------------------------

    def after_cycle(self, session: Session, loop: LoopView, report: ReportView) -> None:
        """Everything one cycle changed, then the textfile; never raises (a failure is logged, old values stay)."""
        try:
            self.cycle(loop, report)
        except Exception as e:  # a bug here must not end the daemon
            self._warn("cycle", f"metrics not updated: {type(e).__name__}: {e}")
        try:
            self.set_splits(split_counts(session), queue_names(session))
        except Exception as e:  # the database away: the gauges keep the last counts read
            session.rollback()
            self._warn("splits", f"split counts not read: {type(e).__name__}: {str(e).splitlines()[0]}")
        self.write_textfile()

    def cycle(self, loop: LoopView, report: ReportView) -> None:
        """The cycle's duration and outcome, what it submitted, the loop's current counts."""
        self.cycle_seconds.observe(loop.last_cycle_seconds)
        self.last_cycle.set(time.time())
        if report.error is not None:
            self.cycle_failures.inc()
        for sub in report.submitted:
            self.arrays.labels(sub.queue).inc()
            self.submitted_splits.labels(sub.queue).inc(len(sub.split_ids))
        self.stuck.set(loop.stuck)
        self.unknown.set(loop.unknown_states)
        self.snapshot_calls.inc(max(0, loop.snapshot_sacct_calls - self._snapshot_calls_seen))
        self._snapshot_calls_seen = loop.snapshot_sacct_calls
        if self._pressure is not None:
            self.limit_refusals.inc(self._pressure.refusals - self._refusals_seen)
            self._refusals_seen = self._pressure.refusals
            self.held_limits.set(len(self._pressure.held()))

    def set_splits(self, counts: Mapping[tuple[str, str], int], queues: Iterable[str] = ()) -> None:
        """The split gauge from (queue, state letter) -> rows: every state of every queue seen, 0 when none."""
        self._queues |= set(queues) | {queue for queue, _ in counts}
        for queue in sorted(self._queues):
            for letter, state in STATES.items():
                self.splits.labels(state, queue).set(counts.get((queue, letter), 0))

    def write_textfile(self) -> None:
        """Rewrite the textfile (a temporary file renamed over it: a reader never sees half of it), if configured."""
        if self.textfile is None:
            return
        try:
            write_to_textfile(str(self.textfile), self.registry)
        except OSError as e:
            self._warn("textfile", f"metrics textfile {self.textfile} not written: {e}")

    def close(self) -> None:
        """Stop the HTTP server (the daemon's end; a test's)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _warn(self, what: str, message: str) -> None:
        """A WARNING when a problem starts or changes, DEBUG while it repeats (cycles come every second)."""
        level = logging.DEBUG if self._warned.get(what) == message else logging.WARNING
        self._warned[what] = message
        log.log(level, "%s", message)


class MeteredRunner:
    """A runner that times every command of the one it wraps, by name; results and errors pass unchanged."""

    def __init__(self, runner: Runner, metrics: Metrics) -> None:
        self.runner, self.metrics = runner, metrics

    def run(self, argv: Sequence[str], stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> CommandResult:
        started = time.monotonic()
        try:
            result = self.runner.run(argv, stdin=stdin, timeout=timeout)
        except CommandError as e:
            reason = "timeout" if isinstance(e, CommandTimeout) else "unreachable"
            self.metrics.command(argv, time.monotonic() - started, reason)
            raise
        self.metrics.command(argv, time.monotonic() - started, None if result.ok else "exit")
        return result


def command_name(argv: Sequence[str]) -> str:
    """The label of a command: its program's base name ("/usr/bin/squeue" -> "squeue")."""
    return Path(str(argv[0])).name if argv else "?"


def split_counts(session: Session) -> dict[tuple[str, str], int]:
    """(queue name, status letter) -> split rows: one GROUP BY over the splits of the jobs still alive."""
    status = type_coerce(JobSplit.status, String)
    rows = session.execute(
        select(Queue.name, status, func.count()).select_from(JobSplit)
        .join(Job, JobSplit.job_id == Job.id).join(Block, Job.block_id == Block.id)
        .outerjoin(Queue, Block.queue_id == Queue.id)
        .group_by(Queue.name, status))
    return {(queue or NO_QUEUE, letter): count for queue, letter, count in rows}


def queue_names(session: Session) -> list[str]:
    """Every synced queue: its split gauges show 0 before its first split."""
    return list(session.scalars(select(Queue.name)))


def start_metrics(config: BridgeConfig) -> Metrics | None:
    """The daemon's metrics as [metrics] asks (None when neither exit is configured); the HTTP server started.

    BridgeError naming the file and key when the address cannot be listened on.
    """
    if not config.metrics.enabled:
        return None
    metrics = Metrics(textfile=config.metrics.textfile)
    if config.metrics.listen is not None:
        from prometheus_client import start_http_server

        host, port = config.metrics.listen
        try:
            metrics.server, _ = start_http_server(port, addr=host, registry=metrics.registry)
        except OSError as e:
            raise BridgeError(f"{config.path}: [metrics] listen = {host}:{port}: cannot listen there "
                              f"({e.strerror or e}); choose a free port, or leave listen out") from e
        log.info("metrics served on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", port)
    if config.metrics.textfile is not None:
        log.info("metrics written to %s after every cycle", config.metrics.textfile)
    return metrics


def reconcile_registry(report, now: float | None = None) -> CollectorRegistry:
    """The gauges of one reconcile run (bridge.reconcile_facts.ReconcileReport) in a registry of their own.

    When Slurm could not be read nothing was judged: only the error flag and the
    time are written, so no stale or made-up count stands for the run.
    """
    from bridge.reconcile_facts import KINDS

    r = CollectorRegistry()
    Gauge("beat_bridge_reconcile_last_run_timestamp_seconds", "Unix time `beat-bridge reconcile` last ran",
          registry=r).set(time.time() if now is None else now)
    Gauge("beat_bridge_reconcile_error", "1 when the last reconcile could not read Slurm (nothing judged)",
          registry=r).set(1 if report.error else 0)
    if report.error is None:
        divergences = Gauge("beat_bridge_reconcile_divergences", "Divergences the last reconcile found, by kind",
                            ["kind"], registry=r)
        for kind in KINDS:
            divergences.labels(kind).set(len(report.of(kind)))
        Gauge("beat_bridge_reconcile_watching", "Splits the last reconcile watched (missing from Slurm, "
              "not yet lost)", registry=r).set(len(report.watching))
    return r


def write_reconcile(config: BridgeConfig, report) -> Path | None:
    """Write the reconcile gauges beside the daemon's textfile (if one is configured); the path written."""
    if config.metrics.textfile is None:
        return None
    path = reconcile_textfile(config.metrics.textfile)
    try:
        write_to_textfile(str(path), reconcile_registry(report))
    except OSError as e:
        log.warning("reconcile metrics textfile %s not written: %s", path, e)
        return None
    return path
