"""What `beat-bridge reconcile` remembers between runs: submitted splits Slurm did not know.

A split whose array neither squeue nor sacct lists is not lost on one look:
sacct lags slurmctld, and slurmctld forgets finished jobs. Each run that misses
it counts once here; a run that sees it (or that could not read Slurm at all)
drops the count. It is lost after `[reconcile] misses` runs in a row spanning
`grace` seconds (bridge.reconcile). One row per split id, no foreign key: the
split may be deleted meanwhile, and the row is then dropped on the next run.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bridge.models import Base, utcnow


class ReconcileMiss(Base):
    """A submitted split whose array the last reconcile runs did not find on Slurm."""

    __tablename__ = "reconcile_misses"

    split_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    array_id: Mapped[str] = mapped_column(String(50))  # the array id it was missed under (a new one starts over)
    misses: Mapped[int] = mapped_column(Integer, default=0)  # consecutive runs that did not find it
    first_miss: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_miss: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<ReconcileMiss split={self.split_id} {self.array_id} x{self.misses}>"
