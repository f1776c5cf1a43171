"""`beat-bridge experiments`: add, schedule, cancel, list, show (why it is where it is) and wait.

Registered by bridge.cli with one call, `add_experiments`, which passes its
helpers in (this module does not import bridge.cli: bridge.cli imports it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bridge.errors import BridgeError
from bridge.values import printable

Action = Callable[..., argparse.ArgumentParser]  # bridge.cli's _action: one sub-command with its handler
WAIT_DONE, WAIT_NOT_DONE, WAIT_TIMEOUT = 0, 1, 2

SHOW_HELP = (
    "the experiment, its blocks (state, queue, job, mirrors) and every split: Slurm element id, node, state, "
    "Slurm's pending reason while queued (one squeue call), exit code, elapsed time, BEAT's user and system "
    "error, the paths of its logs and the last lines of its stderr. Splits of finished blocks come from the "
    "accounting snapshots (their job rows are gone). Times are UTC"
)
WAIT_HELP = (
    "block until the experiment is final, reading its status from the database every --interval seconds (no "
    "Slurm call). Exit 0 when it is done (D), 1 when it failed (F) or is pending (P: never scheduled, or its "
    "cancellation finished), 2 on --timeout"
)


def add_experiments(commands: argparse._SubParsersAction, action: Action, config_option: Callable,
                    id_type: Callable) -> None:
    """The `experiments` command and its actions."""
    experiments = commands.add_parser("experiments", help="declare, schedule, cancel, list, show and wait for "
                                      "experiments")
    actions = experiments.add_subparsers(title="actions", metavar="ACTION")
    add = action(actions, "add", _add,
                 "add experiments from declaration files (JSON or TOML); see bridge/declaration.py for the format")
    add.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add.add_argument("--schedule", action="store_true", help="schedule each experiment right away")
    for name, handler, text in (("schedule", _schedule, "schedule experiments (from P)"),
                                ("cancel", _cancel, "cancel running experiments (from S or R)")):
        each = action(actions, name, handler, text)
        each.add_argument("ids", nargs="+", type=id_type, metavar="ID")
        config_option(each)
    listing = action(actions, "list", _list, "one line per experiment: id, status, blocks done")
    listing.add_argument("--json", action="store_true",
                         help='one JSON array: [{"id", "name", "author", "status", "status_name", '
                         '"blocks_done", "blocks"}]')
    show = action(actions, "show", _show, SHOW_HELP)
    show.add_argument("id", type=id_type, metavar="ID")
    show.add_argument("--json", action="store_true", help="one JSON object (every split, none folded)")
    show.add_argument("--lines", type=_count, default=10, metavar="N",
                      help="last lines of a failed or running element's stderr to show (default 10; 0: none)")
    show.add_argument("--no-slurm", action="store_true", help="do not ask squeue for pending reasons")
    wait = action(actions, "wait", _wait, WAIT_HELP)
    wait.set_defaults(keeps_running=True)  # it may wait for hours: the garbage collector stays on (bridge.cli)
    wait.add_argument("id", type=id_type, metavar="ID")
    wait.add_argument("--timeout", type=_seconds, default=None, metavar="S", help="give up after S seconds (exit 2)")
    wait.add_argument("--interval", type=_seconds, default=2.0, metavar="S",
                      help="seconds between two reads of its status (default 2)")
    for parser in (add, listing, show, wait):
        config_option(parser)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a line count: expected an integer from 0 to 1000")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: expected a positive number of seconds")
    return value


def _app(args: argparse.Namespace):
    from bridge.app import app_for

    return app_for(args)


def _add(args: argparse.Namespace) -> int:
    from bridge.declaration import load_experiment_file
    from bridge.declaration_beat import BeatSite
    from bridge.scheduling import schedule_experiment  # as bridge.helpers, without the submitter's modules

    app = _app(args)
    site = BeatSite(app.config.beat_prefix, app.config.cache_root)
    with app.write_sessions() as session:
        for path in args.files:
            # run by the daemon for another process (bridge.command_server): relative to that process's directory
            source = Path(args.cwd, path) if getattr(args, "cwd", None) else path
            experiment = load_experiment_file(session, source, app.config.limits, site, shown=path)
            print(f"added experiment {experiment.id} {printable(experiment.fullname)} from {path}")
            if args.schedule:
                schedule_experiment(session, experiment)
                print(f"scheduled experiment {experiment.id}: {experiment.status.value}")
    return 0


def _schedule(args: argparse.Namespace) -> int:
    from bridge.models import ExperimentStatus
    from bridge.scheduling import schedule_experiment  # as bridge.helpers, without the submitter's modules

    return _each_experiment(args, schedule_experiment, "scheduled", {ExperimentStatus.PENDING}, "a pending (P)",
                            "scheduled")


def _cancel(args: argparse.Namespace) -> int:
    from bridge.models import LIVE_EXPERIMENT
    from bridge.scheduling import cancel_experiment  # as bridge.helpers, without the submitter's modules

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


def _list(args: argparse.Namespace) -> int:
    from sqlalchemy import case, func, select

    from bridge.models import Block, BlockStatus, Experiment

    done = func.count(case((Block.status == BlockStatus.DONE, 1)))
    query = (select(Experiment.id, Experiment.name, Experiment.author, Experiment.status, done, func.count(Block.id))
             .outerjoin(Block, Block.experiment_id == Experiment.id)
             .group_by(Experiment.id).order_by(Experiment.id))  # one query, not one per experiment's blocks
    app = _app(args)
    with app.sessions() as session:
        rows = [{"id": id_, "name": name, "author": author, "status": status.value,
                 "status_name": status.name.lower(), "blocks_done": blocks_done, "blocks": blocks}
                for id_, name, author, status, blocks_done, blocks in session.execute(query)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['id']:5} {row['status']} {row['blocks_done']}/{row['blocks']} blocks done  "
              f"{printable(row['author'] + '/' + row['name'])}")
    return 0


def _show(args: argparse.Namespace) -> int:
    return show(_app(args), args.id, as_json=args.json, lines=args.lines, ask_slurm=not args.no_slurm)


def show(app, experiment_id: int, as_json: bool = False, lines: int = 10, ask_slurm: bool = True) -> int:
    """Print the explanation of one experiment (bridge.explain); 0, or BridgeError for an unknown id."""
    from bridge.explain import explain
    from bridge.explain_read import gather
    from bridge.explain_text import render
    from bridge.models import utcnow

    with app.sessions() as session:
        facts = gather(session, app.client if ask_slurm else None, app.config.spool_dir, experiment_id, lines)
    view = explain(facts, utcnow())
    print(json.dumps(view, indent=2) if as_json else "\n".join(render(view)))
    return 0


def _wait(args: argparse.Namespace) -> int:
    app = _app(args)
    status = wait_for(app.sessions, args.id, args.timeout, args.interval)
    return report_wait(args.id, status, args.timeout)


def wait_for(sessions, experiment_id: int, timeout: float | None, interval: float,
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """The experiment's final letter (D, F or P), or None on timeout: one small SELECT per interval."""
    from sqlalchemy import select

    from bridge.models import Experiment

    deadline = None if timeout is None else clock() + timeout
    query = select(Experiment.status).where(Experiment.id == experiment_id)
    while True:
        with sessions() as session:
            status = session.scalar(query)
        if status is None:
            raise BridgeError(f"no experiment with id {experiment_id}: `beat-bridge experiments list` shows them")
        if status.value in "DFP":
            return status.value
        if deadline is not None and clock() >= deadline:
            return None
        sleep(interval if deadline is None else max(0.0, min(interval, deadline - clock())))


def report_wait(experiment_id: int, status: str | None, timeout: float | None) -> int:
    """One line on how the wait ended; its exit code."""
    from bridge.models import ExperimentStatus

    if status is None:
        print(f"experiment {experiment_id} is not final after {timeout:g} s", file=sys.stderr)
        return WAIT_TIMEOUT
    name = ExperimentStatus(status).name.lower()
    hint = "" if status == "D" else f": `beat-bridge experiments show {experiment_id}` says why"
    if status == "P":
        hint = ": pending, nothing will run (never scheduled, or its cancellation finished)"
    print(f"experiment {experiment_id}: {status} ({name}){hint}")
    return WAIT_DONE if status == "D" else WAIT_NOT_DONE
