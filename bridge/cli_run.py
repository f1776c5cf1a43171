"""`beat-bridge run`: the daemon (poller.loop.BridgeLoop), its signals, systemd notifications and served commands.

Registered by bridge.cli with one call, `add_run`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable

log = logging.getLogger("bridge")

def add_run(commands: argparse._SubParsersAction, config_option: Callable) -> None:
    run = commands.add_parser(
        "run", help="the bridge daemon: poll Slurm, fire callbacks, split, cancel and submit, in a loop",
        description="Each cycle: one squeue call for every active split (sacct for elements squeue "
        "no longer knows; on_split_started/done/fail/cancelled, dependents unblocked), then "
        "split_new_jobs, scancel of cancelled experiments, and one job array per runnable job. "
        "The interval adapts between [poll] min_interval and max_interval. SIGTERM or SIGINT "
        "finish the current cycle, then stop. At start-up it migrates a database whose schema is behind "
        "this version's (logged, as `db upgrade` does); every other command refuses such a database and "
        "names `beat-bridge db upgrade`.",
    )
    config_option(run)
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.set_defaults(handler=run_command, keeps_running=True)  # the cyclic garbage collector stays on (main)


def run_command(args: argparse.Namespace) -> int:
    import signal

    from bridge.app import open_app
    from bridge.notify import Notifier
    from poller.loop import BridgeLoop

    stopping: list[int] = []  # a signal during start-up (imports, migrations) stops before the first cycle
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: stopping.append(number))
    notifier = Notifier.from_environ()  # systemd's Type=notify (deploy/beat-bridge.service); no-op without it
    app = open_app(args.config, may_upgrade=True)  # started after an upgrade, it migrates (logged), as `db upgrade`
    metrics = _metrics(app)
    backend = metrics.instrument(app.backend) if metrics else app.backend
    loop = BridgeLoop(app.sessions, backend, app.config.poll, metrics=metrics,
                      on_cycle=lambda session, report: _notify_cycle(notifier, loop, report))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, loop.stop)
    if stopping:
        log.info("stopped by signal %d during start-up", stopping[0])
        return 0
    log.info("bridge running with %s (runner %s)", app.config.path, app.config.runner)
    warn_unsynced(app)
    server = None if args.once else _serve_commands(app)
    _notify_ready(notifier, app.config.poll.max_interval)
    try:
        loop.run(once=args.once)
    finally:
        notifier.stopping(f"stopping after {loop.cycles} cycles")
        if server is not None:
            server.close()
    log.info("bridge stopped after %d cycles, %d squeue and %d sacct calls; %d splits in an unknown Slurm "
             "state; %d submissions stuck", loop.cycles, loop.squeue_calls, loop.sacct_calls, loop.unknown_states,
             loop.stuck)
    if metrics:
        metrics.close()
    return 0


def warn_unsynced(app) -> None:
    """Say so when queues.toml and the database's queues differ: scripts render from the database rows."""
    from sqlalchemy.exc import DBAPIError

    from bridge.cli_queues import templates_dirs
    from bridge.queues import unsynced
    from poller.loop import database_error

    try:
        with app.sessions() as session:
            differing = unsynced(session, app.config.queues, templates_dirs(app.config))
    except DBAPIError as e:  # a warning must never end the daemon: the loop rides out the database's absence
        log.warning("could not compare queues.toml with the database's queues: %s", database_error(e))
        return
    if differing:
        log.warning("queues.toml and the database differ for queue(s) %s: arrays render from the database until "
                    "`beat-bridge queues sync` (see `beat-bridge queues diff`)", ", ".join(differing))


def _serve_commands(app):
    """Run short commands for other `beat-bridge` processes (bridge.command_server); None when it cannot."""
    import os

    if os.environ.get("BEAT_BRIDGE_NO_DAEMON"):
        return None
    from bridge.command_server import CommandServer

    return CommandServer.start(app.config)


def _metrics(app):
    """bridge.metrics as [metrics] asks, or None (prometheus_client is imported only then)."""
    if not app.config.metrics.enabled:
        return None
    from bridge.metrics import start_metrics

    return start_metrics(app.config)


def _notify_cycle(notifier, loop, report) -> None:
    """After each cycle: STATUS (cycles, active splits, last error) and the watchdog (bridge.notify)."""
    notifier.cycle(loop.cycles, report.poll.active if report.poll else None, report.error)


def _notify_ready(notifier, max_interval: float) -> None:
    """READY=1 to systemd, and a warning if its watchdog is shorter than idle cycles are apart."""
    from bridge.notify import watchdog_warning

    notifier.ready("start-up done, first cycle next")
    warning = watchdog_warning(notifier.watchdog_timeout, max_interval)
    if warning:
        log.warning("%s", warning)

