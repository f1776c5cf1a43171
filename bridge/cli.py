"""The `beat-bridge` command: argparse wiring and logging set-up, nothing else."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from bridge.cli_audit import add_audit
from bridge.cli_dev import add_cluster, add_demo, demo_command
from bridge.cli_experiments import add_experiments
from bridge.cli_queues import add_queues
from bridge.cli_reconcile import add_reconcile
from bridge.cli_schema import add_schema
from bridge.cli_status import add_status
from bridge.errors import BridgeError
from bridge.values import INT32_MAX, printable

log = logging.getLogger("bridge")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the command, the argument, what is valid); --help has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see --help)\n")


def experiment_id(text: str) -> int:
    """An experiment id as the database stores it: an integer from 1 to 2**31 - 1."""
    try:
        value = int(text, 10)
    except ValueError:
        value = 0
    if not 1 <= value <= INT32_MAX:
        raise argparse.ArgumentTypeError(f"{text!r} is not an experiment id: expected an integer from 1 to {INT32_MAX}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run one beat-bridge command; exit code 0 on success, 1 on a BridgeError, 2 on bad usage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The daemon's cycle logs at INFO; one-shot commands print their outcome and log only
    # warnings (the demo's progress display is its output).
    quiet = getattr(args, "quiet", False) or getattr(args, "handler", None) is demo_command
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    collecting = gc.isenabled()
    if not getattr(args, "keeps_running", False):
        # A one-shot command's start-up (SQLAlchemy, the mappers, the configuration) allocates ~250,000
        # objects that all stay; collecting the young generation while they pile up cost ~10% of
        # `experiments list` (bench/cli_latency.py). Without cycles to speak of, the process ends first.
        gc.disable()
    try:
        return handle(args)
    finally:
        if collecting:  # main() called in-process (tests, scripts): the caller's collector as it was
            gc.enable()


def handle(args: argparse.Namespace) -> int:
    """The command's handler; its errors as one line on stderr and an exit code."""
    try:
        return args.handler(args) or 0
    except BridgeError as e:
        print(f"beat-bridge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("beat-bridge: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the database lost mid-command (server restarted, backend terminated)
        lost = database_lost(e)
        if lost is None:
            raise
        print(f"beat-bridge: error: {lost}; what was committed stays, run the command again", file=sys.stderr)
        return 1


def database_lost(e: Exception) -> str | None:
    """One line for a database error (sqlalchemy's DBAPIError), else None.

    Checked lazily: sqlalchemy is not imported for commands that never opened the database.
    """
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None or not isinstance(e, exc.DBAPIError):
        return None
    from poller.loop import database_error

    return database_error(e)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="beat-bridge",
        description="Run BEAT experiments on Slurm: splits become job-array elements on "
        "partitions, squeue (sacct for what it forgot) drives the callbacks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every external command (DEBUG)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_cluster(commands, _action)
    _add_db(commands)
    add_experiments(commands, _action, _config_option, experiment_id)
    add_queues(commands, _action, _config_option)
    _add_submit(commands)
    _add_run(commands)
    add_audit(commands, _config_option, experiment_id)
    add_reconcile(commands, _action)
    add_schema(commands, _action)
    add_status(commands, _action, _config_option)
    add_demo(commands)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None,
        help="bridge.toml (default: $BEAT_BRIDGE_CONFIG, else config/bridge.toml); "
        "it names its queues.toml, relative to itself",
    )


def _app(args: argparse.Namespace, may_upgrade: bool = False):
    from bridge.app import app_for, open_app

    return open_app(args.config, may_upgrade=may_upgrade) if may_upgrade else app_for(args)


def _action(actions, name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, quiet=handler not in (_run, _submit))
    return parser


# -- db, queues, submit ------------------------------------------------------


def _add_db(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="the bridge's database (SQLite or PostgreSQL)")
    actions = db.add_subparsers(title="actions", metavar="ACTION")
    upgrade = _action(actions, "upgrade", _db_upgrade,
                      "create or migrate the schema (Alembic) to this version's revision; after installing a "
                      "new version, commands other than `run` refuse the database until this has run")
    _config_option(upgrade)


def _db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from bridge.config import load_config, resolve_config_path
    from bridge.preflight import upgrade_database

    config = load_config(resolve_config_path(args.config))
    upgrade_database(config.path, config.database_url)
    print(f"database schema is current: {make_url(config.database_url).render_as_string(hide_password=True)}")
    return 0


def _add_submit(commands: argparse._SubParsersAction) -> None:
    submit = commands.add_parser(
        "submit", help="one cycle now, as `run --once`: poll, callbacks, split, cancel, submit arrays",
        description="The same cycle as `run --once`: one squeue for every active split (sacct for "
        "what squeue forgot) and its callbacks, split_new_jobs, one scancel for what must stop "
        "(process_newly_cancelled_experiments and failed siblings), then "
        "assign_splits_to_workers: one job array per job on the queue's partition.",
    )
    _config_option(submit)
    submit.set_defaults(handler=_submit)


def _submit(args: argparse.Namespace) -> int:
    from poller.loop import run_cycle

    app = _app(args)
    with app.sessions() as session:
        report = run_cycle(session, app.backend)
        if report.error:
            print(f"this cycle failed in part, the rest is retried next cycle: {report.error}")
        for split_id, event in report.poll.events if report.poll else ():
            print(f"split {split_id}: {event}")
        if report.cancelled:
            print(f"scancelled {len(report.cancelled)} elements")
        for tag in report.cancelled_tags:
            print(f"scancelled the jobs named {tag} (an array whose id was never learnt)")
        for tag in report.stuck:
            print(f"stuck: submission {tag}: whether Slurm has it is still unknown (see [claims] in bridge.toml)")
        for sub in report.submitted:
            print(f"submitted array {sub.job_id} ({sub.tag}) to queue {sub.queue}: {len(sub.split_ids)} splits")
    return 0


# -- run ----------------------------------------------------------------------------


def _add_run(commands: argparse._SubParsersAction) -> None:
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
    _config_option(run)
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.set_defaults(handler=_run, keeps_running=True)  # the cyclic garbage collector stays on (main)


def _run(args: argparse.Namespace) -> int:
    import signal

    from bridge.notify import Notifier
    from poller.loop import BridgeLoop

    stopping: list[int] = []  # a signal during start-up (imports, migrations) stops before the first cycle
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: stopping.append(number))
    notifier = Notifier.from_environ()  # systemd's Type=notify (deploy/beat-bridge.service); no-op without it
    app = _app(args, may_upgrade=True)  # a daemon started after an upgrade migrates (logged), as `db upgrade`
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
    _warn_unsynced(app)
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


def _warn_unsynced(app) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
