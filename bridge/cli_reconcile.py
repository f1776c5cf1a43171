"""`beat-bridge reconcile`: the database against squeue and sacct, one line per divergence (bridge.reconcile)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bridge.errors import BridgeError
from bridge.values import printable
from bridge.when import parse_when, utc_now

Action = Callable[..., argparse.ArgumentParser]  # bridge.cli's _action: one sub-command with its handler
CLEAN, DIVERGED, ERROR = 0, 1, 2

DESCRIPTION = (
    "Compare the database with Slurm (one `squeue -t all --me`, one `sacct -X` over --since) and print each "
    "divergence with its ids. orphan: an element pending or running on Slurm under a tag of this deployment "
    "(bridge.toml's `deployment`) that no split or accounting snapshot knows, or that the database has final; "
    "arrays of other deployments are never reported. lost: a queued or processing split whose array neither "
    "squeue nor sacct knows on [reconcile] misses runs in a row over its grace (until then: watched). "
    "divergent: done in BEAT but not COMPLETED on Slurm, or failed but COMPLETED. stuck: splits claimed and "
    "never recorded past [claims] stuck_after. Exit 0 when clean, 1 on any divergence, 2 when Slurm or the "
    "database could not be read (nothing is judged then)."
)


def add_reconcile(commands: argparse._SubParsersAction, _action: Action) -> None:
    parser = _action(commands, "reconcile", reconcile_command,
                     "compare the database with squeue and sacct; exit 0 clean, 1 divergent, 2 error")
    parser.description = DESCRIPTION
    parser.add_argument("--config", type=Path, default=None,
                        help="bridge.toml (default: $BEAT_BRIDGE_CONFIG, else config/bridge.toml)")
    parser.add_argument("--since", type=since_arg, default=timedelta(days=7), metavar="WHEN",
                        help="sacct's window: a duration back from now (7d, 12h, 30m) or a UTC time "
                        "(2026-11-24 or 2026-11-24T08:00); default 7d. Earlier when a submitted split is older")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object: {"clean", "divergences": [{kind, ids..., detail}], '
                        '"watching", "checked", "applied", "error"}')
    parser.add_argument("--apply", action="store_true",
                        help="do the safe actions, printing each: scancel orphans of this deployment, queue "
                        "lost splits again (the next cycle submits them under a new tag). Nothing else changes")


def since_arg(text: str) -> timedelta:
    """`7d`, `12h`, `30m`, `90s`, or a UTC date/time (bridge.when), as how far back from now."""
    now = utc_now()
    try:
        when = parse_when(text, now)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if when > now:
        raise argparse.ArgumentTypeError(f"{text!r} is in the future (times are UTC)")
    return now - when


def reconcile_command(args: argparse.Namespace) -> int:
    from bridge.app import open_app
    from bridge.reconcile_run import apply, check

    try:
        app = open_app(args.config)
        with app.write_sessions() as session:
            report = check(session, app.client, app.config, since=args.since)
            if report.error is None and args.apply:
                apply(session, app.client, report)
        if app.config.metrics.textfile is not None:  # its gauges for node_exporter (bridge.metrics)
            from bridge.metrics import write_reconcile

            write_reconcile(app.config, report)
    except BridgeError as e:  # the configuration, the database file: an error, never "divergent" (exit 1)
        print(f"beat-bridge reconcile: error: {e}", file=sys.stderr)
        return ERROR
    except Exception as e:  # the database lost mid-run (bridge.cli's reading of it)
        from bridge.cli import database_lost

        lost = database_lost(e)
        if lost is None:
            raise
        print(f"beat-bridge reconcile: error: {lost}", file=sys.stderr)
        return ERROR
    if report.error is not None:
        print(f"beat-bridge reconcile: error: {report.error}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    elif report.error is None:
        print("\n".join(render(report)))
    return ERROR if report.error else CLEAN if report.clean else DIVERGED


def render(report) -> list[str]:
    """The summary line, one aligned line per divergence and per watched split, then what --apply did."""
    lines = [summary(report)]
    rows = [_cells(d) for d in report.divergences] + [_cells(d, "watching") for d in report.watching]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] if rows else []
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    lines += [f"applied: {line}" for line in report.applied]
    return lines


def summary(report) -> str:
    from bridge.reconcile import KINDS

    checked = report.checked
    seen = (f"{checked.get('slurm_jobs', 0)} squeue and {checked.get('accounted', 0)} sacct records, "
            f"{checked.get('splits', 0)} splits, {checked.get('snapshots', 0)} snapshots, "
            f"{checked.get('claims', 0)} unrecorded claims checked")
    where = f"deployment {report.deployment}, sacct since {report.window_start:%Y-%m-%d %H:%M:%S} UTC"
    watched = f"; {len(report.watching)} split(s) watched (not on Slurm, not yet lost)" if report.watching else ""
    if report.clean:
        return f"clean: no divergence ({where}; {seen}){watched}"
    counts = ", ".join(f"{len(report.of(kind))} {kind}" for kind in KINDS if report.of(kind))
    return f"{len(report.divergences)} divergences: {counts} ({where}; {seen}){watched}"


def _cells(d, kind: str | None = None) -> list[str]:
    def value(label: str, v: object) -> str:
        return f"{label} {printable(str(v)) if v is not None else '-'}"

    return [kind or d.kind, value("experiment", d.experiment_id), value("block", d.block),
            value("split", d.split_id), value("slurm", d.slurm_id), value("tag", d.tag),
            d.slurm_state or "-", d.detail]
