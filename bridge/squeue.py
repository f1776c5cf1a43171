"""squeue as the poller's fast source: slurmctld's own view, seconds ahead of sacct.

sacct learns of an array element's end only when slurmdbd has recorded it, and
for 2-3 s after an element ends it shows the array as one row without `_T`
(measured here on 22.05); squeue answers from slurmctld at once and keeps
finished jobs for MinJobAge (300 s by default). So each cycle asks squeue about
every active array in one call, and only elements squeue no longer knows (older
than MinJobAge, or after a controller restart) are looked up in sacct.
squeue's `exit_code` is the raw wait status (768 = exit 3, 9 = signal 9): it is
turned into sacct's `N:S` and the rows into the same SlurmRecord.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from bridge.sacct import SlurmRecord, expand_array_id, latest_by_element, normalize_state, parse_line
from bridge.slurm import SQUEUE_FIELDS as FIELDS

log = logging.getLogger(__name__)

SACCT_NAMES = tuple(sacct for _, sacct in FIELDS)
STATE = SACCT_NAMES.index("State")
EXIT = SACCT_NAMES.index("ExitCode")


def wait_status(text: str) -> str:
    """squeue's raw wait status as sacct's `N:S`: `768` -> `3:0`, `9` -> `0:9`."""
    status = int(text)
    signal = status & 0x7F
    return f"0:{signal}" if signal else f"{status >> 8}:0"


@dataclass
class SqueueView:
    """squeue's answer: started elements by element id, the ids still pending in array ranges, and
    the rows under a bare array id (no `_T`: e.g. a cancelled array's never-started elements)."""

    records: dict[str, SlurmRecord] = field(default_factory=dict)
    pending: AbstractSet[str] = field(default_factory=set)  # frozen when shared between rounds (SqueueLines)
    bare: list[SlurmRecord] = field(default_factory=list)


def parse_squeue(text: str) -> list[SlurmRecord]:
    """Records of `bridge.slurm.squeue_argv`'s output (pending ranges expanded); malformed lines logged and skipped."""
    return [record for number, values in _rows(text) for record in _parse(number, values)]


class SqueueLines:
    """What each line of the last status round meant: a line squeue prints again is not parsed again.

    From one cycle to the next squeue prints the same lines until something
    changes: one range row per held or pending array, one row per running or
    recently finished element. Parsing them (times; ranges of a thousand ids)
    was most of a poll's own cost at 10,000 splits. Parsing is a function of
    the line alone, so reusing it is exact; only the last round's lines are
    kept, and a malformed line is never kept (it is warned about each time).
    """

    def __init__(self) -> None:
        self._last: dict[str, frozenset[str] | tuple[SlurmRecord, ...]] = {}
        self._now: dict[str, frozenset[str] | tuple[SlurmRecord, ...]] = {}
        self._views_last: dict[str, SqueueView] = {}  # whole answers: pending ids frozen, shared
        self._views_now: dict[str, SqueueView] = {}

    def new_round(self) -> None:
        """A status round starts: lines the previous round did not print are dropped at its end."""
        self._last, self._now = self._now, {}
        self._views_last, self._views_now = self._views_now, {}

    def view_of(self, text: str) -> SqueueView | None:
        """The view of an answer printed again whole: its own records and rows, the pending ids shared (frozen)."""
        known = self._views_now.get(text) or self._views_last.get(text)
        if known is None:
            return None
        self._views_now[text] = known
        for line in text.splitlines():  # its lines stay known for the round its text changes
            part = self._last.get(line)
            if part is not None:
                self._now[line] = part
        return SqueueView(dict(known.records), known.pending, list(known.bare))

    def keep_view(self, text: str, view: SqueueView) -> None:
        view.pending = frozenset(view.pending)
        self._views_now[text] = SqueueView(dict(view.records), view.pending, list(view.bare))

    def get(self, line: str) -> frozenset[str] | tuple[SlurmRecord, ...] | None:
        part = self._now.get(line)
        if part is None:
            part = self._last.get(line)
            if part is not None:
                self._now[line] = part
        return part

    def put(self, line: str, part: frozenset[str] | tuple[SlurmRecord, ...]) -> None:
        self._now[line] = part


def squeue_view(text: str, lines: SqueueLines | None = None) -> SqueueView:
    """The poller's view: a pending range `J_[a-b]` only names ids (no record per element: it is
    the common case of a large array, and nothing is done for a pending element).

    A range row in state CANCELLED is no longer pending: it is how squeue shows the
    never-started elements of a cancelled array (`J_[0-2]|...|CANCELLED`, recorded in
    tests/data/replay/pending.json), so it gives each of them a record. `lines`
    remembers each line's meaning across calls (SqueueLines).
    """
    if lines is not None:
        known = lines.view_of(text)
        if known is not None:  # nothing changed: not even 10,000 pending ids are gathered again
            return known
    view = SqueueView()
    rows: list[SlurmRecord] = []
    pending: set[str] = set()
    clean = True  # no malformed line: an answer with one is parsed (and warned about) every time
    for number, line in enumerate(text.splitlines(), 1):
        part = lines.get(line) if lines is not None else None
        if part is None:
            part = _meaning(number, line)
            if not part:
                clean = clean and not line.strip()
                continue
            if lines is not None:
                lines.put(line, part)
        if isinstance(part, frozenset):
            pending |= part
        else:
            rows += part
    view.records = by_element(rows)
    view.bare = [r for r in rows if r.array_task_id is None]
    pending.difference_update(view.records)
    view.pending = pending
    if lines is not None and clean:
        lines.keep_view(text, view)
    return view


def _meaning(number: int, line: str) -> frozenset[str] | tuple[SlurmRecord, ...] | None:
    """A pending range's element ids, or the line's records; None (logged) when malformed."""
    values = _values(number, line)
    if values is None:
        return None
    if "[" not in values[0] or normalize_state(values[STATE]) == "CANCELLED":
        return tuple(_parse(number, values))
    try:
        return frozenset(f"{job}_{task}" for job, task in expand_array_id(values[0]))
    except ValueError as e:
        _skip(number, e, values)
        return None


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, values in sacct's field order with sacct's ExitCode) of each well-formed line."""
    for number, line in enumerate(text.splitlines(), 1):
        values = _values(number, line)
        if values is not None:
            yield number, values


def _values(number: int, line: str) -> list[str] | None:
    """One line's values in sacct's field order with sacct's ExitCode; None (logged) when malformed."""
    values = line.split("|")
    if values and values[-1] == "":
        values.pop()
    if len(values) < len(FIELDS):
        if line.strip():
            _skip(number, "too few fields", values)
        return None
    try:
        values[EXIT] = wait_status(values[EXIT])
    except ValueError as e:
        _skip(number, e, values)
        return None
    return values


def _parse(number: int, values: list[str]) -> list[SlurmRecord]:
    try:
        return parse_line("|".join(values), SACCT_NAMES)
    except ValueError as e:
        _skip(number, e, values)
        return []


def _skip(number: int, why: object, values: list[str]) -> None:
    log.warning("squeue output line %d skipped (%s): %r", number, why, "|".join(values))


def by_element(records: Iterable[SlurmRecord]) -> dict[str, SlurmRecord]:
    """Element records keyed by element id (`123_4`), a started row beating a pending range."""
    return {f"{job}_{task}": rec for (job, task), rec in latest_by_element(list(records)).items()}
