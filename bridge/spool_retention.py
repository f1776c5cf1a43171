"""Removing settled arrays' spool directories once past `spool_retention_hours`.

A spool directory (``<spool_dir>/<tag>/``: the manifest, result files, element
logs) is settled when no split is active under its tag: its results are in the
database (or its claim was released). It is removed once nothing in it has
changed for the retention. Only directories named by a submission tag of the
bridge's making are ever touched. The sweep runs from the cycle at most once
per `SWEEP_EVERY` seconds per spool directory, so its listing costs nothing per cycle.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.models import ACTIVE_SPLIT, JobSplit
from bridge.tags import parse_tag

log = logging.getLogger(__name__)

SWEEP_EVERY = 600.0  # seconds between two sweeps of one spool directory
_last_sweep: dict[str, float] = {}


def due(spool_dir: Path, now: float | None = None) -> bool:
    """Whether the spool directory's sweep is due (and, if so, mark it done now)."""
    now = time.monotonic() if now is None else now
    last = _last_sweep.get(str(spool_dir))
    if last is not None and now - last < SWEEP_EVERY:
        return False
    _last_sweep[str(spool_dir)] = now
    return True


def sweep(session: Session, spool_dir: Path, retention_hours: float, now: float | None = None) -> list[Path]:
    """Remove every settled array directory untouched for the retention; the directories removed."""
    now = time.time() if now is None else now
    try:
        candidates = [d for d in spool_dir.iterdir() if d.is_dir() and parse_tag(d.name) is not None]
    except OSError as e:
        log.warning("cannot list the spool %s: %s", spool_dir, e)
        return []
    old = [d for d in candidates if now - _newest_change(d) >= retention_hours * 3600]
    if not old:
        return []
    live: set[str] = set()
    for start in range(0, len(old), 500):  # bounded IN lists
        names = [d.name for d in old[start:start + 500]]
        live.update(session.scalars(select(JobSplit.submission_tag).distinct().where(
            JobSplit.submission_tag.in_(names), JobSplit.status.in_(sorted(ACTIVE_SPLIT)))))
    removed = []
    for directory in old:
        if directory.name in live:
            continue
        try:
            shutil.rmtree(directory)
        except OSError as e:
            log.warning("cannot remove settled spool %s: %s", directory, e)
            continue
        removed.append(directory)
    if removed:
        log.info("removed %d settled spool directories older than %.0f h", len(removed), retention_hours)
    return removed


def _newest_change(directory: Path) -> float:
    """The latest modification time of the directory or any file directly in it."""
    newest = directory.stat().st_mtime
    for path in directory.iterdir():
        try:
            newest = max(newest, path.stat().st_mtime)
        except OSError:
            continue
    return newest
