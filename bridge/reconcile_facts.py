"""What one reconcile run read, and its verdict: plain values for the pure rules of bridge.reconcile.

The database's side (splits, snapshots, unrecorded claims, earlier misses) and
Slurm's (records of squeue and sacct) in one frozen Facts; the verdict is a
ReconcileReport whose `to_dict()` is what `reconcile --json` prints and what
an audit report embeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from bridge.sacct import SlurmRecord
from bridge.status import FINAL_SPLIT, SplitStatus

KINDS = ("orphan", "lost", "divergent", "stuck")
FINAL = frozenset(s.value for s in FINAL_SPLIT)
SUBMITTED = frozenset({SplitStatus.QUEUED.value, SplitStatus.PROCESSING.value})  # what can be lost


@dataclass(frozen=True)
class SplitRow:
    """A split the database has on Slurm's side (a tag or an array id)."""

    split_id: int
    status: str  # BEAT's letter
    experiment_id: int | None
    block: str | None
    tag: str | None
    array_id: str | None
    element_id: str | None
    slurm_state: str | None = None  # as the poller last recorded it
    submitted: datetime | None = None
    settled: datetime | None = None  # end_date: when BEAT made it final


@dataclass(frozen=True)
class SnapshotRow:
    """An accounting snapshot: a split as it settled, kept after its rows are gone."""

    split_id: int
    split_status: str  # C, F or L
    experiment_id: int
    block: str
    tag: str | None
    element_id: str
    state: str | None  # the Slurm state it holds
    from_sacct: bool  # that state was read from sacct (complete), not copied from the poll
    settled: datetime  # first_seen: when it was recorded, in the transaction that made the split final


@dataclass(frozen=True)
class Claim:
    """Splits claimed under one tag and never recorded (no array id)."""

    tag: str
    split_ids: tuple[int, ...]
    experiment_id: int | None
    block: str | None
    since: datetime | None = None  # the first look-up of the tag (claim_lookups), if any
    reported: bool = False  # the submit cycle already reported it stuck


@dataclass(frozen=True)
class Misses:
    """How many runs in a row did not find a split's array, since when."""

    array_id: str
    misses: int
    first_miss: datetime


@dataclass(frozen=True)
class Facts:
    """Everything one reconcile run read: Slurm first, then the database."""

    deployment: str
    read_at: datetime  # when squeue was asked (naive UTC)
    now: datetime
    window_start: datetime  # sacct's -S
    jobs: Sequence[SlurmRecord]  # squeue -t all --me
    accounted: Sequence[SlurmRecord]  # sacct -X over the window
    splits: Sequence[SplitRow]
    snapshots: Sequence[SnapshotRow]
    claims: Sequence[Claim]
    misses: Mapping[int, Misses]  # by split id, from the previous runs
    confirmed: frozenset[str] = frozenset()  # array ids a look-up by id found (unseen() asked it)


@dataclass(frozen=True)
class Divergence:
    """One disagreement, with every id an admin greps for."""

    kind: str
    detail: str
    experiment_id: int | None = None
    block: str | None = None
    split_id: int | None = None
    tag: str | None = None
    slurm_id: str | None = None  # array ("123") or element ("123_4") id
    slurm_state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReconcileReport:
    """One run's verdict: the divergences, the splits being watched, what was counted."""

    deployment: str
    window_start: datetime
    divergences: list[Divergence] = field(default_factory=list)
    watching: list[Divergence] = field(default_factory=list)  # missing from Slurm, not yet lost (kind "lost")
    misses: dict[int, Misses] = field(default_factory=dict)  # the counts to keep for the next run
    checked: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # a Slurm call failed: nothing was judged
    applied: list[str] = field(default_factory=list)  # what --apply did

    @property
    def clean(self) -> bool:
        return self.error is None and not self.divergences

    def of(self, kind: str) -> list[Divergence]:
        return [d for d in self.divergences if d.kind == kind]

    def to_dict(self) -> dict[str, Any]:
        counts = {kind: len(self.of(kind)) for kind in KINDS}
        return {"clean": self.clean, "deployment": self.deployment, "error": self.error,
                "window_start": self.window_start.isoformat(), "counts": counts,
                "divergences": [d.to_dict() for d in self.divergences],
                "watching": [d.to_dict() for d in self.watching],
                "checked": dict(self.checked), "applied": list(self.applied)}
