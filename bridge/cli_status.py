"""`beat-bridge status`: is a daemon running, what is it doing, did Slurm answer it (bridge.daemon_status)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

Action = Callable[..., argparse.ArgumentParser]  # bridge.cli's _action: one sub-command with its handler
RUNNING, NOT_RUNNING = 0, 1

DESCRIPTION = (
    "What the daemon (`beat-bridge run`) is doing, from the heartbeat it writes at the end of every cycle and "
    "the split rows; no Slurm call. Shows its host and pid, when its last cycle ended and how long it took, the "
    "wait before the next (the backoff after a failure), the last error, when Slurm last answered its poll, "
    "the active splits by what they wait for, and the live experiments. Exit 0 while a daemon runs; 1, saying "
    "'no daemon running (last seen ...)', when the heartbeat is older than the announced wait plus "
    "--stale-after seconds."
)


def add_status(commands: argparse._SubParsersAction, action: Action, config_option: Callable) -> None:
    parser = action(commands, "status", status_command, "what the daemon is doing; exit 1 when none runs")
    parser.description = DESCRIPTION
    config_option(parser)
    parser.add_argument("--json", action="store_true",
                        help='one JSON object: {"running", "daemon", "last_error", "slurm", "splits", "experiments"}')
    parser.add_argument("--stale-after", type=float, default=None, metavar="S",
                        help="seconds past its announced next cycle after which a daemon counts as gone "
                        "(default: 3 x [poll] max_interval + [slurm.timeouts] status)")


def status_command(args: argparse.Namespace) -> int:
    from bridge.app import app_for
    from bridge.daemon_status import STALE_INTERVALS, describe, experiment_counts, render, split_counts
    from bridge.heartbeat import read
    from bridge.models import utcnow

    app = app_for(args)
    stale_after = args.stale_after
    if stale_after is None:
        stale_after = STALE_INTERVALS * app.config.poll.max_interval + app.config.timeouts.status
    with app.sessions() as session:
        beat, splits, experiments = read(session), split_counts(session), experiment_counts(session)
    status = describe(beat, splits, experiments, utcnow(), stale_after)
    print(json.dumps(status, indent=2) if args.json else "\n".join(render(status)))
    return RUNNING if status["running"] else NOT_RUNNING
