"""The `beat-bridge` command: argparse wiring and logging set-up, nothing else."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from bridge.cli_audit import add_audit
from bridge.cli_dev import add_cluster, add_demo, demo_command
from bridge.cli_queues import add_queues
from bridge.cli_reconcile import add_reconcile
from bridge.cli_schema import add_schema
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
    _add_experiments(commands)
    add_queues(commands, _action, _config_option)
    _add_submit(commands)
    _add_run(commands)
    add_audit(commands, _config_option, experiment_id)
    add_reconcile(commands, _action)
    add_schema(commands, _action)
    add_demo(commands)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=None,
        help="bridge.toml (default: $BEAT_BRIDGE_CONFIG, else config/bridge.toml); "
        "it names its queues.toml, relative to itself",
    )


def _app(args: argparse.Namespace):
    from bridge.app import open_app

    return open_app(args.config)


def _action(actions, name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, quiet=handler not in (_run, _submit))
    return parser


# -- db, experiments, queues, submit ------------------------------------------------------


def _add_db(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="the bridge's database (SQLite or PostgreSQL)")
    actions = db.add_subparsers(title="actions", metavar="ACTION")
    upgrade = _action(actions, "upgrade", _db_upgrade, "create or migrate the schema (Alembic) to the newest revision")
    _config_option(upgrade)


def _db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from bridge.config import load_config, resolve_config_path
    from bridge.preflight import upgrade_database

    config = load_config(resolve_config_path(args.config))
    upgrade_database(config.path, config.database_url)
    print(f"database schema is current: {make_url(config.database_url).render_as_string(hide_password=True)}")
    return 0


def _add_experiments(commands: argparse._SubParsersAction) -> None:
    experiments = commands.add_parser("experiments", help="declare, schedule, cancel and list experiments")
    actions = experiments.add_subparsers(title="actions", metavar="ACTION")
    add = _action(actions, "add", _experiments_add,
                  "add experiments from declaration files (JSON or TOML); see bridge/declaration.py for the format")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add.add_argument("--schedule", action="store_true", help="schedule each experiment right away")
    for name, handler, text in (("schedule", _experiments_schedule, "schedule experiments (from P)"),
                                ("cancel", _experiments_cancel, "cancel running experiments (from S or R)")):
        action = _action(actions, name, handler, text)
        action.add_argument("ids", nargs="+", type=experiment_id, metavar="ID")
        _config_option(action)
    listing = _action(actions, "list", _experiments_list, "one line per experiment: id, status, blocks done")
    for parser in (add, listing):
        _config_option(parser)


def _experiments_add(args: argparse.Namespace) -> int:
    from bridge.declaration import load_experiment_file
    from bridge.helpers import schedule_experiment

    app = _app(args)
    with app.write_sessions() as session:
        for path in args.files:
            experiment = load_experiment_file(session, path, app.config.limits)
            print(f"added experiment {experiment.id} {printable(experiment.fullname)} from {path}")
            if args.schedule:
                schedule_experiment(session, experiment)
                print(f"scheduled experiment {experiment.id}: {experiment.status.value}")
    return 0


def _experiments_schedule(args: argparse.Namespace) -> int:
    from bridge.helpers import schedule_experiment
    from bridge.models import ExperimentStatus

    return _each_experiment(args, schedule_experiment, "scheduled", {ExperimentStatus.PENDING}, "a pending (P)",
                            "scheduled")


def _experiments_cancel(args: argparse.Namespace) -> int:
    from bridge.helpers import cancel_experiment
    from bridge.models import LIVE_EXPERIMENT

    return _each_experiment(args, cancel_experiment, "cancelling", LIVE_EXPERIMENT,
                            "a scheduled (S) or running (R)", "cancelled")


def _each_experiment(args: argparse.Namespace, action: Callable, verb: str, valid: set, which: str,
                     past: str) -> int:
    """Check every id first (it exists, its status allows the action), then act on each: all or nothing refused."""
    from bridge.models import Experiment

    app = _app(args)
    with app.write_sessions() as session:
        experiments = []
        for experiment_id in args.ids:
            experiment = session.get(Experiment, experiment_id)
            if experiment is None:
                raise BridgeError(f"no experiment with id {experiment_id}: `beat-bridge experiments list` shows them")
            if experiment.status not in valid:
                raise BridgeError(f"experiment {experiment_id} is {experiment.status.value} "
                                  f"({experiment.status.name.lower()}): only {which} experiment can be {past}")
            experiments.append(experiment)
        session.rollback()  # the checks' reads end here; each action takes its own lock
        for experiment in experiments:
            moved = action(session, experiment)
            session.refresh(experiment)
            if moved is False or experiment.status in valid:
                raise BridgeError(f"experiment {experiment.id} is {experiment.status.value}: it changed meanwhile, "
                                  f"only {which} experiment can be {past}")
            print(f"{verb} experiment {experiment.id}: status {experiment.status.value}")
    return 0


def _experiments_list(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bridge.models import Experiment

    app = _app(args)
    with app.sessions() as session:
        for e in session.scalars(select(Experiment).order_by(Experiment.id)):
            done = sum(1 for b in e.blocks if b.status.value == "C")
            print(f"{e.id:5} {e.status.value} {done}/{len(e.blocks)} blocks done  {printable(e.fullname)}")
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
        "finish the current cycle, then stop.",
    )
    _config_option(run)
    run.add_argument("--once", action="store_true", help="run one cycle and exit")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import signal

    from poller.loop import BridgeLoop

    stopping: list[int] = []  # a signal during start-up (imports, migrations) stops before the first cycle
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: stopping.append(number))
    app = _app(args)
    loop = BridgeLoop(app.sessions, app.backend, app.config.poll)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, loop.stop)
    if stopping:
        log.info("stopped by signal %d during start-up", stopping[0])
        return 0
    log.info("bridge running with %s (runner %s)", app.config.path, app.config.runner)
    loop.run(once=args.once)
    log.info("bridge stopped after %d cycles, %d squeue and %d sacct calls; %d splits in an unknown Slurm "
             "state; %d submissions stuck", loop.cycles, loop.squeue_calls, loop.sacct_calls, loop.unknown_states,
             loop.stuck)
    return 0


if __name__ == "__main__":
    sys.exit(main())
