"""The accounting snapshot: what Slurm accounted for one settled split, kept after its rows are gone.

One compact, denormalised row per attempt of a split that ran on Slurm: the
attempt that settled it (done, failed or cancelled) and each earlier attempt
failure-aware resubmission ran again (bridge.resubmission), unique by
(split_id, attempt): an audit counts every element Slurm ran. The BEAT side
(experiment, block, author, queue, tag) is copied when the attempt ends
(bridge.snapshots.record_settled, record_attempt), the Slurm side read later
from sacct with its steps (bridge.snapshots.refresh).
No foreign key: jobs and splits are deleted when a block ends (bridge.outcomes),
and audits must outlive them, and slurmdbd's purges too.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bridge.models import Base, utcnow


class SnapshotStatus(str, enum.Enum):
    """pending: sacct not read yet, or not settled there; complete; unavailable: given up (what was read stays)."""

    PENDING = "pending"
    COMPLETE = "complete"
    UNAVAILABLE = "unavailable"


class AccountingSnapshot(Base):
    """sacct's figures of one settled array element, with the BEAT names it ran for."""

    __tablename__ = "accounting_snapshots"
    __table_args__ = (UniqueConstraint("split_id", "attempt", name="uq_accounting_snapshots_split_id_attempt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # BEAT's side, copied at settling (no foreign keys: see the module)
    split_id: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # JobSplit.attempt that ran it
    split_status: Mapped[str] = mapped_column(String(1))  # C, F or L, as the attempt ended (F: resubmitted)
    verdict: Mapped[str | None] = mapped_column(String(40))  # the poller's: done, failed:out_of_memory, ...
    experiment_id: Mapped[int] = mapped_column(Integer, index=True)
    experiment_name: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(100))  # the BEAT user (Slurm's User is the bridge's account)
    block_name: Mapped[str] = mapped_column(String(200))
    queue_name: Mapped[str | None] = mapped_column(String(100))
    mapping_version: Mapped[str | None] = mapped_column(String(16))  # bridge.queues.mapping_version of the queue
    algorithm: Mapped[str | None] = mapped_column(String(200))  # "package.module:function"
    submission_tag: Mapped[str | None] = mapped_column(String(100))
    array_job_id: Mapped[int] = mapped_column(Integer)
    element_id: Mapped[str] = mapped_column(String(60), index=True)  # "4242_3"
    split_index: Mapped[int | None] = mapped_column(Integer)  # its Result's key with the block (None before 0006)
    # the snapshot's own state
    status: Mapped[str] = mapped_column(String(12), default=SnapshotStatus.PENDING.value, index=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_attempt: Mapped[datetime | None] = mapped_column(DateTime, index=True)  # max(): when the last round ran
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Slurm's side (sacct; None until read). Times naive UTC, as every time of the bridge.
    partition: Mapped[str | None] = mapped_column(String(100))  # the queue's until sacct says
    account: Mapped[str | None] = mapped_column(String(100))
    qos: Mapped[str | None] = mapped_column(String(100))
    node_list: Mapped[str | None] = mapped_column(String(1000))
    alloc_cpus: Mapped[int | None] = mapped_column(Integer)
    req_mem_mb: Mapped[int | None] = mapped_column(Integer)
    max_rss_kb: Mapped[int | None] = mapped_column(BigInteger)  # KiB, the batch step's MaxRSS
    total_cpu_s: Mapped[float | None] = mapped_column(Float)
    elapsed_s: Mapped[int | None] = mapped_column(Integer)
    timelimit_min: Mapped[int | None] = mapped_column(Integer)
    submit: Mapped[datetime | None] = mapped_column(DateTime)
    eligible: Mapped[datetime | None] = mapped_column(DateTime)
    start: Mapped[datetime | None] = mapped_column(DateTime)
    end: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    state: Mapped[str | None] = mapped_column(String(50))  # as printed: "CANCELLED by 0"
    exit_code: Mapped[str | None] = mapped_column(String(20))  # "N:S"

    def __repr__(self) -> str:
        return f"<AccountingSnapshot split={self.split_id} attempt={self.attempt} {self.element_id} {self.status}>"
