"""`beat-bridge audit`: who used what, how well, from the accounting snapshots (sacct for what they lack)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bridge.errors import BridgeError
from bridge.when import FORMS, parse_when, utc_now

FORMATS = ("table", "csv", "json", "html")
# bridge.audit.DIMENSIONS, named here so that building the parser does not import the audit
# (tests/test_cli_imports.py checks that they agree)
DIMENSIONS = ("experiment", "block", "author", "queue", "mapping", "partition", "algorithm", "node")


def add_audit(commands: argparse._SubParsersAction, config_option: Callable, id_type: Callable) -> None:
    audit = commands.add_parser(
        "audit", help="core-hours, waste, efficiency, queue wait and failures per experiment, block, author, ...",
        description="Figures of the array elements that ended in a period, from the accounting snapshots the "
        "bridge keeps (they outlive job rows and slurmdbd purges); elements whose snapshot lacks Slurm's "
        "figures are asked of sacct (one call per 500, read-only). Core-hours are AllocCPUS x Elapsed; "
        "wasted core-hours are those of elements Slurm did not end COMPLETED; CPU efficiency is TotalCPU / "
        "core time, memory efficiency the batch step's MaxRSS / ReqMem, time efficiency Elapsed / Timelimit; "
        "queue wait is Start - Submit. Author is the BEAT user. All times are UTC. CSV and JSON columns are "
        "documented in bridge/audit_format.py.",
    )
    config_option(audit)
    audit.add_argument("--since", default="7d", help=f"start of the period (default 7d: seven days ago); {FORMS}")
    audit.add_argument("--until", default="now", help="end of the period, excluded (default now); same forms")
    audit.add_argument("--by", choices=DIMENSIONS, default="experiment", help="group by (default experiment)")
    audit.add_argument("--experiment", type=id_type, default=None, metavar="ID", help="only this experiment")
    audit.add_argument("--format", choices=FORMATS, default="table",
                       help="table (a terminal), csv or json (scripts), html (one self-contained file)")
    audit.add_argument("--output", type=Path, default=None, metavar="FILE", help="write here instead of stdout")
    audit.add_argument("--advise", action="store_true",
                       help="right-sizing advice instead: p95 memory and time per queue and algorithm against the "
                       "queue's limits, and suggested queues.toml changes (never applied)")
    audit.add_argument("--no-sacct", action="store_true",
                       help="use the snapshots only: no sacct call for elements they lack figures of")
    audit.add_argument("--no-reconcile", action="store_true",
                       help="html: leave out the reconciliation summary (by default the page includes what "
                       "`beat-bridge reconcile` says now, which reads squeue and sacct once)")
    audit.set_defaults(handler=audit_command, quiet=True)


def audit_command(args: argparse.Namespace) -> int:
    from bridge.app import open_app
    from bridge.audit_report import ReportRequest, build

    now = utc_now()
    since, until = (parse_when_option(name, getattr(args, name), now) for name in ("since", "until"))
    if since >= until:
        raise BridgeError(f"--since {args.since} is not before --until {args.until}: the period is empty")
    app = open_app(args.config)
    text, note = build(app, ReportRequest(since, until, args.by, args.format, args.experiment, args.advise,
                                          sacct=not args.no_sacct, reconcile=not args.no_reconcile))
    _write(text, args.output)
    if note:
        print(note, file=sys.stderr)
    if args.output is not None:
        print(f"audit report: {args.output.resolve()}")
    return 0


def parse_when_option(name: str, text: str, now: datetime) -> datetime:
    try:
        return parse_when(text, now)
    except ValueError as e:
        raise BridgeError(f"--{name}: {e}") from None


def _write(text: str, output: Path | None) -> None:
    """To stdout, or to FILE whole or not at all (a temporary file beside it, renamed)."""
    import tempfile

    if output is None:
        sys.stdout.write(text)
        return
    directory = output.resolve().parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=directory)
    except OSError as e:
        raise BridgeError(f"--output {output}: cannot write in {directory}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as an ordinary new file would be, not mkstemp's 0600
        os.replace(temporary, output)
    except OSError as e:
        os.unlink(temporary)
        raise BridgeError(f"--output {output}: {e.strerror}") from None
