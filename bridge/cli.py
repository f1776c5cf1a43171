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
from bridge.cli_run import add_run, run_command
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
    add_run(commands, _config_option)
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


def _action(actions, name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, quiet=handler not in (run_command, _submit))
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
    from bridge.app import open_app
    from poller.loop import run_cycle

    app = open_app(args.config)
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


if __name__ == "__main__":
    sys.exit(main())
