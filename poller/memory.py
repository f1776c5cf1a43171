"""What each active split looked like at the last poll, kept between polls: the database read only for changes.

The poller follows every submitted, non-final split. Reading all of them every
cycle (10,000 rows) cost several times the squeue call itself, although most
cycles change nothing. This memory keeps the few columns a poll needs
(`Active`) by element id, and knows when it is stale from the scheduler lock's
counter (bridge.history): every state-changing helper, in any process (the
web server, the CLI, another daemon, this daemon's submitter), bumps it by one
in its own transaction. So a poll reads one row to know whether anything
changed since the memory was filled:

* the same counter: nothing did; the memory is current;
* the counter moved by exactly the poller's own transactions since then: only
  those splits are read again (by id);
* anything else: every active split is read again (one Core SELECT of a few
  columns through the status index, no ORM objects).

The memory only filters: every transition is still a guarded update
(bridge.slurm_events), so a stale entry costs a no-op, never a wrong change.
Nothing lives only here: a restart reads everything again, as before.
`invalidate()` forces a full read at the next poll (a writer that bypassed the
lock, or anything an outside detector cannot vouch for); a full read also
happens every FULL_READ_EVERY seconds, as a backstop. A wake-up on database
change (NOTIFY, SQLite's data_version) need not call it for the helpers'
writes, which the counter already shows: each call costs one full read. The
daemon's memory is `poller.loop.BridgeLoop.memory`. Idle cycles must not take
the lock for nothing (split_new_jobs and process_newly_cancelled_experiments
look first), or every poll would read everything again: still correct, as
slow as before.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from itertools import filterfalse
from typing import NamedTuple

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from bridge.models import ACTIVE_SPLIT, JobSplit, SchedulerLock
from bridge.squeue import SqueueView

log = logging.getLogger(__name__)

FULL_READ_EVERY = 300.0  # seconds: a full read even when the counter says nothing changed (backstop)
ID_CHUNK = 500  # ids per `IN (...)` when a poll's own splits are read again
SELF_CONTAINED = frozenset({None, "started", "done"})  # events that change no split but their own


class Active(NamedTuple):
    """The few columns of an active split that a poll reads."""

    id: int
    slurm_job_id: str
    slurm_element_id: str
    status: str  # the letter
    slurm_state: str | None
    submit_time: datetime | None


_SPLITS = JobSplit.__table__
_COLUMNS = (_SPLITS.c.id, _SPLITS.c.slurm_job_id, _SPLITS.c.slurm_element_id,
            type_coerce(_SPLITS.c.status, String), _SPLITS.c.slurm_state, _SPLITS.c.submit_time)
_IS_ACTIVE = (_SPLITS.c.slurm_element_id.is_not(None),
              _SPLITS.c.status.in_(sorted(status.value for status in ACTIVE_SPLIT)))
# Built once: polls run every second, and building a statement costs about as much as running it.
_ACTIVE = select(*_COLUMNS).where(*_IS_ACTIVE).order_by(_SPLITS.c.id)
_COUNTER = select(SchedulerLock.__table__.c.counter).where(SchedulerLock.__table__.c.id == 1)


def active_splits(session: Session) -> list[Active]:
    """Every submitted, non-final split, in id order: what the poller adopts (and after a restart).

    Plain tuples from a Core SELECT (status as its letter, through its index):
    no ORM objects for rows of which most need nothing done.
    """
    return [Active._make(row) for row in session.connection().execute(_ACTIVE)]


def lock_counter(session: Session) -> int | None:
    """The scheduler lock's counter: how many state-changing transactions have committed (None: no row)."""
    return session.connection().execute(_COUNTER).scalar()


def _rows_by_id(session: Session, ids: list[int]) -> list[Active]:
    """The current rows of these splits that are still active."""
    found: list[Active] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start:start + ID_CHUNK]
        stmt = select(*_COLUMNS).where(_SPLITS.c.id.in_(chunk), *_IS_ACTIVE)
        found += [Active._make(row) for row in session.connection().execute(stmt)]
    return found


class ActiveMemory:
    """Active splits by element id as of the scheduler lock's counter `counter`; see the module."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.counter: int | None = None  # None: unknown, read everything at the next poll
        self.full_reads = self.partial_reads = 0  # how often each kind of read ran (reports, tests)
        self._rows: dict[str, Active] = {}
        self._elements: dict[int, str] = {}  # split id -> element id
        self._arrays: Counter[int] = Counter()  # array id -> active elements
        self._array_ids: list[int] | None = None
        self._read_at = 0.0
        self._own = 0  # locked transactions the poller ran since `counter`
        self._touched: set[int] = set()  # the splits they were about
        self._version = 0  # bumped whenever the rows change
        self._pending: AbstractSet[str] | None = None  # the pending ids `_uncovered` was found against
        self._covered_at = -1  # and the version it was found at
        self._uncovered: list[Active] = []  # the active splits not in `_pending`

    def invalidate(self) -> None:
        """Forget what the memory knows: the next poll reads every active split again."""
        self.counter = None

    def read(self, session: Session) -> Mapping[str, Active]:
        """Every active split by element id, read from the database only as far as it changed.

        The counter is read before the rows: a change committed in between makes
        the rows newer than the counter remembered, so the next poll reads again.
        """
        counter = lock_counter(session)
        if (self.counter is None or counter is None or self.clock() - self._read_at > FULL_READ_EVERY
                or counter != self.counter + self._own):
            self._fill(active_splits(session))
            self.full_reads += 1
        elif self._own:
            self._update(self._touched, _rows_by_id(session, sorted(self._touched)))
            self.partial_reads += 1
        self.counter, self._own = counter, 0
        self._touched = set()
        return self._rows

    def unseen(self, view: SqueueView) -> list[Active]:
        """The active splits the view neither shows started nor pending (bridge.status_view.Tracked).

        Those not pending are found once per pending set and memory content:
        squeue's answer printed again shares its frozen pending ids (bridge.squeue.SqueueLines),
        so a poll where nothing changed makes no pass over 10,000 splits.
        """
        if view.pending is not self._pending or self._covered_at != self._version:
            self._pending, self._covered_at = view.pending, self._version
            self._uncovered = [self._rows[e] for e in filterfalse(view.pending.__contains__, self._rows)]
        return [row for row in self._uncovered if row.slurm_element_id not in view.records]

    def arrays(self) -> list[int]:
        """The array ids of the active splits, sorted."""
        if self._array_ids is None:
            self._array_ids = sorted(self._arrays)
        return self._array_ids

    def applied(self, split_id: int, event: str | None) -> None:
        """The poller ran one locked transaction about this split, which fired `event` (or none).

        A started or done split changes no other active split; anything else
        (a failure cancels siblings, a resubmission gives a new element id) is
        read again in full.
        """
        self._own += 1
        self._touched.add(split_id)
        if event not in SELF_CONTAINED:
            self.invalidate()

    def _fill(self, rows: Iterable[Active]) -> None:
        self._rows, self._elements, self._arrays, self._array_ids = {}, {}, Counter(), None
        self._add(rows)
        self._read_at = self.clock()
        log.debug("active splits read in full: %d", len(self._rows))

    def _update(self, ids: Iterable[int], rows: list[Active]) -> None:
        """Replace the entries of `ids` by `rows` (those of them still active).

        The splits not pending (`unseen`) are corrected in place, not found again
        over every split: the next poll most often reads the same squeue answer.
        """
        ids = set(ids)
        current = self._covered_at == self._version
        self._remove(ids)
        self._add(rows)
        if current and self._pending is not None:
            pending = self._pending
            self._uncovered = [r for r in self._uncovered if r.id not in ids]
            self._uncovered += [r for r in rows if r.slurm_element_id not in pending]
            self._covered_at = self._version

    def _remove(self, ids: Iterable[int]) -> None:
        for split_id in ids:
            element = self._elements.pop(split_id, None)
            if element is not None:
                old = self._rows.pop(element)
                self._arrays[int(old.slurm_job_id)] -= 1
                if not self._arrays[int(old.slurm_job_id)]:
                    del self._arrays[int(old.slurm_job_id)]
                    self._array_ids = None

    def _add(self, rows: Iterable[Active]) -> None:
        self._version += 1
        for row in rows:
            self._rows[row.slurm_element_id] = row
            self._elements[row.id] = row.slurm_element_id
            array = int(row.slurm_job_id)
            if array not in self._arrays:
                self._array_ids = None
            self._arrays[array] += 1
