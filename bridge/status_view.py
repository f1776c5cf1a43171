"""What the Slurm client's status() takes and answers: the elements asked about, and Slurm's view of them.

Types only; bridge.slurm_client re-exports them (`from bridge.slurm_client import StatusView` keeps working).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from bridge.squeue import SqueueView


class Element(Protocol):
    """What status() needs of a submitted split: its array, its element id, its submit time."""

    @property
    def slurm_job_id(self) -> str: ...
    @property
    def slurm_element_id(self) -> str: ...
    @property
    def submit_time(self) -> datetime | None: ...


@runtime_checkable
class Tracked(Protocol):
    """Elements a caller keeps between status calls (the poller's memory, poller.memory).

    It names their arrays and says which of them a view neither shows started nor
    pending, remembering what it can between calls: at 10,000 elements, one pass
    over them costs a noticeable part of the squeue call itself.
    """

    def arrays(self) -> Sequence[int]: ...
    def unseen(self, view: SqueueView) -> list[Element]: ...


@dataclass
class StatusView(SqueueView):
    """Slurm's answer on a set of elements: squeue's view, completed from sacct where it forgot.

    ``from_sacct`` names the elements sacct answered for; an error is kept per
    source (None when it answered or was not asked).
    """

    from_sacct: set[str] = field(default_factory=set)
    missing: list[Element] = field(default_factory=list)  # the elements squeue did not show (asked of sacct)
    squeue_error: str | None = None
    sacct_error: str | None = None
    squeue_calls: int = 0
    sacct_calls: int = 0

    def unseen(self, elements: Iterable[Element]) -> list[Element]:
        """The elements neither started (a record) nor pending in this view."""
        return [e for e in elements
                if e.slurm_element_id not in self.records and e.slurm_element_id not in self.pending]
