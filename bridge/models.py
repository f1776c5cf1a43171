"""The database model: BEAT's experiments, blocks, cached files, jobs, splits and queues.

Names, status letters and meanings follow BEAT (beat.web's backend and
experiments apps). The status enums, their rule sets and their column type are
in bridge.status (re-exported here). The Slurm side of a split (array job id,
element id, state, node, times, submission tag) lives on JobSplit itself.
The schema is created by the Alembic migration in ``bridge/migrations``; a
test checks that it matches this metadata.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bridge.status import (
    ACTIVE_SPLIT,
    FINAL_EXPERIMENT,
    FINAL_SPLIT,
    LIVE_EXPERIMENT,
    UNFINISHED_BLOCK,
    BlockStatus,
    CacheStatus,
    ExperimentStatus,
    Letter,
    SplitStatus,
    on_slurm,
)

__all__ = [  # the status names are re-exported: `from bridge.models import SplitStatus` keeps working
    "ACTIVE_SPLIT", "FINAL_EXPERIMENT", "FINAL_SPLIT", "LIVE_EXPERIMENT", "UNFINISHED_BLOCK", "BlockStatus",
    "CacheStatus", "ExperimentStatus", "Letter", "SplitStatus", "on_slurm", "utcnow", "Base", "Environment",
    "Queue", "Worker", "Experiment", "CachedFile", "Block", "Job", "Result", "JobSplit", "StateHistory",
    "SchedulerLock", "ClaimLookup",
]


def utcnow() -> datetime:
    """The current UTC time as a naive datetime (SQLite keeps no time zone)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """The declarative base of every bridge table."""


queue_environments = Table(
    "queue_environments", Base.metadata,
    Column("queue_id", ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True),
    Column("environment_id", ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True),
)

block_dependencies = Table(
    "block_dependencies", Base.metadata,
    Column("block_id", ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True),
    Column("dependency_id", ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True),
)

block_outputs = Table(
    "block_outputs", Base.metadata,
    Column("block_id", ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True),
    Column("cached_file_id", ForeignKey("cached_files.id", ondelete="CASCADE"), primary_key=True),
)


class Environment(Base):
    """A software environment an algorithm runs in (name + version)."""

    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(50))

    def __repr__(self) -> str:
        return f"<Environment {self.name} ({self.version})>"


class Queue(Base):
    """A BEAT queue; on Slurm, a partition with the queue's limits as sbatch options."""

    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    partition: Mapped[str] = mapped_column(String(100))
    memory_limit: Mapped[int] = mapped_column(Integer)  # MB
    time_limit: Mapped[int] = mapped_column(Integer)  # minutes
    cores_per_slot: Mapped[int] = mapped_column(Integer, default=1)
    max_slots_per_user: Mapped[int] = mapped_column(Integer, default=1)
    # what else the script renders from queues.toml (bridge.queues.QueueSettings), and its fingerprint
    account: Mapped[str | None] = mapped_column(String(100))
    qos: Mapped[str | None] = mapped_column(String(100))
    extra_directives: Mapped[list[str] | None] = mapped_column(JSON)
    template: Mapped[str | None] = mapped_column(String(255))  # a name in the templates directories
    version: Mapped[str | None] = mapped_column(String(16))  # bridge.queues.mapping_version; a QueueVersion key
    environments: Mapped[list[Environment]] = relationship(secondary=queue_environments)

    def __repr__(self) -> str:
        return f"<Queue {self.name} partition={self.partition}>"


class Worker(Base):
    """A processing node (a Slurm node, recorded from squeue's or sacct's NodeList)."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    cores: Mapped[int] = mapped_column(Integer, default=1)
    memory: Mapped[int] = mapped_column(Integer, default=0)  # MB
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[str | None] = mapped_column(String(50))  # Slurm's node state, if known


class Experiment(Base):
    """A user's experiment: its blocks, its status and its author (for per-user limits)."""

    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("author", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    author: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[ExperimentStatus] = mapped_column(
        Letter(ExperimentStatus), default=ExperimentStatus.PENDING
    )
    creation_date: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    start_date: Mapped[datetime | None] = mapped_column(DateTime)
    end_date: Mapped[datetime | None] = mapped_column(DateTime)
    blocks: Mapped[list[Block]] = relationship(
        back_populates="experiment", cascade="all, delete-orphan",
        order_by="Block.execution_order", passive_deletes=True,
    )

    @property
    def fullname(self) -> str:
        """``author/name``, as BEAT names experiments."""
        return f"{self.author}/{self.name}"

    def __repr__(self) -> str:
        return f"<Experiment {self.fullname} {self.status.value}>"


class CachedFile(Base):
    """One output in the cache, shared by every block (of any experiment) producing it."""

    __tablename__ = "cached_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[CacheStatus] = mapped_column(Letter(CacheStatus), default=CacheStatus.NOT_CACHED)
    statistics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    stdout: Mapped[str | None] = mapped_column(Text)
    stderr: Mapped[str | None] = mapped_column(Text)
    error_report: Mapped[str | None] = mapped_column(Text)
    blocks: Mapped[list[Block]] = relationship(secondary=block_outputs, back_populates="outputs")

    def __repr__(self) -> str:
        return f"<CachedFile {self.hash[:12]} {self.status.value}>"


class Block(Base):
    """A node of an experiment's toolchain; `command` is what its splits run."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("experiment_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    command: Mapped[str] = mapped_column(Text)  # JSON, see bridge.declaration
    status: Mapped[BlockStatus] = mapped_column(Letter(BlockStatus), default=BlockStatus.PENDING)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    environment_id: Mapped[int | None] = mapped_column(
        ForeignKey("environments.id", ondelete="SET NULL")
    )
    required_slots: Mapped[int] = mapped_column(Integer, default=1)
    execution_order: Mapped[int] = mapped_column(Integer, default=0)
    start_date: Mapped[datetime | None] = mapped_column(DateTime)
    end_date: Mapped[datetime | None] = mapped_column(DateTime)

    experiment: Mapped[Experiment] = relationship(back_populates="blocks")
    queue: Mapped[Queue | None] = relationship()
    environment: Mapped[Environment | None] = relationship()
    dependencies: Mapped[list[Block]] = relationship(
        secondary=block_dependencies,
        primaryjoin=lambda: Block.id == block_dependencies.c.block_id,
        secondaryjoin=lambda: Block.id == block_dependencies.c.dependency_id,
        back_populates="dependents",
    )
    dependents: Mapped[list[Block]] = relationship(
        secondary=block_dependencies,
        primaryjoin=lambda: Block.id == block_dependencies.c.dependency_id,
        secondaryjoin=lambda: Block.id == block_dependencies.c.block_id,
        back_populates="dependencies",
    )
    outputs: Mapped[list[CachedFile]] = relationship(
        secondary=block_outputs, back_populates="blocks", order_by="CachedFile.hash"
    )
    job: Mapped[Job | None] = relationship(
        back_populates="block", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Block {self.name} {self.status.value}>"


class Job(Base):
    """A block that must run; deleted with its splits once the block is over (as BEAT)."""

    __tablename__ = "jobs"
    # Jobs and splits are deleted when done: AUTOINCREMENT keeps SQLite from reusing
    # their ids, so a late event for a deleted split never lands on a new one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    block_id: Mapped[int] = mapped_column(
        ForeignKey("blocks.id", ondelete="CASCADE"), unique=True
    )
    key: Mapped[str] = mapped_column(String(64), index=True)
    runnable_date: Mapped[datetime | None] = mapped_column(DateTime)
    start_date: Mapped[datetime | None] = mapped_column(DateTime)
    end_date: Mapped[datetime | None] = mapped_column(DateTime)
    split_errors: Mapped[int] = mapped_column(Integer, default=0)
    mirror: Mapped[bool] = mapped_column(Boolean, default=False)
    # the queue's mapping version of its first array: every later array renders with it (bridge.queue_versions)
    mapping_version: Mapped[str | None] = mapped_column(String(16))

    block: Mapped[Block] = relationship(back_populates="job")
    splits: Mapped[list[JobSplit]] = relationship(
        back_populates="job", cascade="all, delete-orphan",
        order_by="JobSplit.split_index", passive_deletes=True,
    )

    def __repr__(self) -> str:
        return f"<Job {self.id} key={self.key[:12]}{' mirror' if self.mirror else ''}>"


class Result(Base):
    """What one split (or a failed split attempt) gave back; kept after the job is gone."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    block_id: Mapped[int | None] = mapped_column(ForeignKey("blocks.id", ondelete="SET NULL"))
    split_index: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[int] = mapped_column(Integer, default=0)
    stdout: Mapped[str | None] = mapped_column(Text)
    stderr: Mapped[str | None] = mapped_column(Text)
    user_error: Mapped[str | None] = mapped_column(Text)
    system_error: Mapped[str | None] = mapped_column(Text)
    statistics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timed_out: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)
    creation_date: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobSplit(Base):
    """One range of a job's data: one Slurm array element."""

    __tablename__ = "job_splits"
    __table_args__ = (UniqueConstraint("job_id", "split_index"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    split_index: Mapped[int] = mapped_column(Integer)
    start_index: Mapped[int | None] = mapped_column(Integer)
    end_index: Mapped[int | None] = mapped_column(Integer)
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    result_id: Mapped[int | None] = mapped_column(ForeignKey("results.id", ondelete="SET NULL"))
    # indexed: the poller reads the active splits every second, whatever the history
    status: Mapped[SplitStatus] = mapped_column(Letter(SplitStatus), default=SplitStatus.QUEUED, index=True)
    start_date: Mapped[datetime | None] = mapped_column(DateTime)
    end_date: Mapped[datetime | None] = mapped_column(DateTime)
    cache_errors: Mapped[int] = mapped_column(Integer, default=0)
    # The Slurm side. submission_tag is set *before* sbatch (exactly-once submission):
    # a tag without slurm_job_id means "being submitted".
    submission_tag: Mapped[str | None] = mapped_column(String(100), index=True)
    slurm_job_id: Mapped[str | None] = mapped_column(String(50))
    slurm_element_id: Mapped[str | None] = mapped_column(String(60), index=True)
    slurm_state: Mapped[str | None] = mapped_column(String(50))
    slurm_node: Mapped[str | None] = mapped_column(String(200))
    slurm_exit_code: Mapped[str | None] = mapped_column(String(20))
    submit_time: Mapped[datetime | None] = mapped_column(DateTime)
    start_time: Mapped[datetime | None] = mapped_column(DateTime)
    end_time: Mapped[datetime | None] = mapped_column(DateTime)
    mapping_version: Mapped[str | None] = mapped_column(String(16))  # the queue settings its array rendered
    # Failure-aware resubmission (bridge.resubmission): the attempt running or next, the queue of the
    # next attempt when not the block's, and the nodes it must avoid (sbatch --exclude, comma list).
    attempt: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    queue_id: Mapped[int | None] = mapped_column(
        ForeignKey("queues.id", ondelete="SET NULL", name="fk_job_splits_queue_id"))
    exclude_nodes: Mapped[str | None] = mapped_column(String(200))

    job: Mapped[Job] = relationship(back_populates="splits")
    worker: Mapped[Worker | None] = relationship()
    result: Mapped[Result | None] = relationship()

    def __repr__(self) -> str:
        return f"<JobSplit {self.id} job={self.job_id} #{self.split_index} {self.status.value}>"


# Tables in modules of their own (they share only Base); imported here so the metadata holds them
# and `from bridge.models import ...` finds every one.
from bridge.models_audit import AccountingSnapshot, SnapshotStatus  # noqa: E402
from bridge.models_bookkeeping import ClaimLookup, SchedulerLock, StateHistory  # noqa: E402
from bridge.models_daemon import DaemonHeartbeat  # noqa: E402
from bridge.models_queues import QueueVersion  # noqa: E402
from bridge.models_reconcile import ReconcileMiss  # noqa: E402

__all__ += ["AccountingSnapshot", "SnapshotStatus", "ReconcileMiss", "DaemonHeartbeat", "QueueVersion"]
