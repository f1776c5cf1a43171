"""The bridge's own bookkeeping tables: every status transition, the helpers' mutex, unsure submissions.

They share only Base with bridge.models, which imports and re-exports them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bridge.models import Base, utcnow


class StateHistory(Base):
    """One row per status transition of an experiment, block, cached file or split."""

    __tablename__ = "state_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(String(20))  # table name of the entity
    entity_id: Mapped[int] = mapped_column(Integer, index=True)
    from_status: Mapped[str | None] = mapped_column(String(1))
    to_status: Mapped[str] = mapped_column(String(1))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)


class SchedulerLock(Base):
    """One row that every state-changing helper updates first: the transactions' mutex.

    On PostgreSQL the row lock serialises helpers (no deadlock between lock orders);
    on SQLite the first write takes the database's write lock before anything is read.
    """

    __tablename__ = "scheduler_lock"

    id: Mapped[int] = mapped_column(primary_key=True)
    counter: Mapped[int] = mapped_column(Integer, default=0)


class ClaimLookup(Base):
    """A submission tag whose sbatch outcome is unknown, and what its look-ups have found so far.

    Kept until the look-up is sure (bridge.claims): found on Slurm (recorded), or
    missed by both squeue and sacct on enough consecutive cycles (released).
    """

    __tablename__ = "claim_lookups"

    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    since: Mapped[datetime] = mapped_column(DateTime, default=utcnow)  # first look-up
    misses: Mapped[int] = mapped_column(Integer, default=0)  # consecutive sure "not there" answers
    first_miss: Mapped[datetime | None] = mapped_column(DateTime)
    stuck: Mapped[bool] = mapped_column(Boolean, default=False)  # reported stuck (once)
    last_error: Mapped[str | None] = mapped_column(Text)
