"""See an element end before the next poll: its result file appearing in its array's spool directory.

Every element writes ``split-N.result.json`` as its last act (bridge.sbatch_scripts.element),
on success and on failure. Between polls the daemon looks at the spool
directories of its active arrays every RESULT_TICK: one stat() per
directory (a rename into it changes its mtime), a listing only when that
changed. A new result file of an active split wakes the loop, whose poll then
confirms with one squeue and decides as always (poller.poll: result read, cache
verified, callbacks), so BEAT's semantics stay the poll's: the file alone is
never a verdict, but a successful one of an element that waits for its
release (its manifest says so, bridge.handover) and that Slurm still shows
running is its end. Slurm is asked at most once per EARLY_GAP for them
(wait_for_results): a file first seen after the last poll began brings the next
poll to EARLY_GAP after that one; an element that wrote its result but was
still running or completing at the last poll is polled again after
CONFIRM_DELAY, for at most CONFIRM_WINDOW seconds per file, then the normal
interval again. With more than WATCH_LIMIT active splits nothing is watched. Nothing
here reads or changes the database but `refresh`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import handover
from bridge.models import JobSplit
from bridge.sbatch_scripts import manifest
from bridge.sbatch_scripts import spool as spool_files

CONFIRM_DELAY = 0.15  # seconds to the next poll while an active split's result file is there
EARLY_GAP = 0.1  # seconds: at most one poll per EARLY_GAP for result files; no wake-up cuts a wait shorter
RESULT_TICK = 0.05  # seconds between two looks at the spool directories while splits are watched
CONFIRM_WINDOW = 3.0  # seconds after which a result file no longer shortens the wait
RESULT_SUFFIX = ".result.json"
# Above this many active splits nothing is watched: ends come all the time, so the regular poll sees one
# every interval anyway, and listing huge spool directories every tick would cost more than it saves.
# The submitter lets elements linger for their release only below it (bridge.handover).
WATCH_LIMIT = handover.WATCHED_AT_MOST

_ACTIVE_ELEMENTS = select(JobSplit.submission_tag, JobSplit.slurm_element_id).where(*handover.ACTIVE_ON_SLURM)


def element_index(element_id: str) -> int:
    """The array index of an element id `123_4` (the index its result file is named with)."""
    return int(element_id.rpartition("_")[2])


def result_indices(directory: Path) -> set[int]:
    """The indices of the result files in an array's spool directory (none when it is gone)."""
    found = set()
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if name.startswith("split-") and name.endswith(RESULT_SUFFIX):
            number = name[len("split-"):-len(RESULT_SUFFIX)]
            if number.isdigit():
                found.add(int(number))
    return found


class ResultWatch:
    """The active arrays' spool directories, checked cheaply for result files of active splits."""

    def __init__(self, spool_root: str | Path) -> None:
        self.spool_root = Path(spool_root)
        self.active: dict[str, set[int]] = {}  # submission tag -> array indices of its active splits
        self._mtimes: dict[str, int | None] = {}
        self._first_seen: dict[tuple[str, int], float] = {}  # results of active splits -> when first seen
        self._lingers: dict[str, bool] = {}  # tag -> its elements wait for their release (bridge.handover)

    def refresh(self, session: Session) -> None:
        """Read which splits are active (one query), and which of them already wrote their result."""
        active: dict[str, set[int]] = {}
        rows = session.execute(_ACTIVE_ELEMENTS.limit(WATCH_LIMIT + 1)).all()
        for tag, element_id in rows if len(rows) <= WATCH_LIMIT else ():
            if tag:
                active.setdefault(tag, set()).add(element_index(element_id))
        self.active = active
        self._mtimes = {tag: self._mtimes.get(tag) for tag in active}
        self._lingers = {tag: self._lingers[tag] if tag in self._lingers else self._array_lingers(tag)
                         for tag in active}
        self._first_seen = {key: seen for key, seen in self._first_seen.items()
                            if key[0] in active and key[1] in active[key[0]]}
        for tag in active:
            self._look(tag, force=True)

    def new_results(self) -> bool:
        """Whether an active split's result file appeared since the last look: a stat per array."""
        return any([self._look(tag) for tag in self.active])  # a list: every directory is looked at

    def unconfirmed(self, now: float | None = None) -> bool:
        """Whether an active split has had its result file for less than CONFIRM_WINDOW seconds."""
        now = time.monotonic() if now is None else now
        return any(now - seen < CONFIRM_WINDOW for seen in self._first_seen.values())

    def finished(self) -> frozenset[tuple[str, int]]:
        """(tag, index) of active elements of lingering arrays whose result is there: the poll may end them.

        Only arrays whose elements wait for their release (bridge.handover): any other
        element ends at once after its result, and its split waits for Slurm's word.
        """
        return frozenset(key for key in self._first_seen if self._lingers.get(key[0]))

    def _array_lingers(self, tag: str) -> bool:
        """Whether the array's manifest tells its elements to wait for their release (read once per array)."""
        try:
            return manifest.array_linger(spool_files.array_spool_dir(self.spool_root, tag)) > 0
        except ValueError:
            return False

    def seen_since(self, moment: float) -> bool:
        """Whether a result file of an active split was first seen at or after `moment` (time.monotonic())."""
        return any(seen >= moment for seen in self._first_seen.values())

    def _look(self, tag: str, force: bool = False) -> bool:
        """List the directory if it changed; True if a result of an active split is new."""
        try:
            directory = spool_files.array_spool_dir(self.spool_root, tag)
            mtime: int | None = directory.stat().st_mtime_ns
        except (OSError, ValueError):
            mtime, directory = None, None
        if directory is None or (mtime == self._mtimes.get(tag) and not force):
            return False
        self._mtimes[tag] = mtime
        now, new = time.monotonic(), False
        for index in result_indices(directory) & self.active[tag]:
            if (tag, index) not in self._first_seen:
                self._first_seen[tag, index] = now
                new = True
        return new


def wait_for_results(wait: float, now: float, polled_at: float, fresh: bool, unconfirmed: bool) -> float:
    """The wait before the next cycle (from `now`), shortened by what the active splits' result files say.

    `fresh`: a result file was first seen after the last poll began, so that poll may have asked
    squeue before the element ended: the next poll comes EARLY_GAP after the last one began (the
    ends of one level's elements, a few tens of milliseconds apart, are often split by a poll).
    `unconfirmed`: a result file seen before the last poll began, its split still active: the
    element is still completing; the next poll after CONFIRM_DELAY. Either way Slurm is asked at
    most once per EARLY_GAP.
    """
    if fresh:
        return min(wait, max(0.0, polled_at + EARLY_GAP - now))
    if unconfirmed:
        return min(wait, max(CONFIRM_DELAY, EARLY_GAP))
    return wait
