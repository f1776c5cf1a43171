"""Initial schema: BEAT's backend tables, the Slurm side of splits, state history.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _letter(name: str) -> sa.Column:
    return sa.Column(name, sa.String(1), nullable=False)


def _date(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def _fk(name: str, target: str, ondelete: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _text(name: str) -> sa.Column:
    return sa.Column(name, sa.Text(), nullable=True)


def upgrade() -> None:
    """Create every table of bridge.models and the scheduler lock row."""
    _queues_and_workers()
    _experiments_and_blocks()
    _jobs_and_splits()
    op.create_table(
        "state_history", _id(),
        sa.Column("entity", sa.String(20), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(1), nullable=True),
        sa.Column("to_status", sa.String(1), nullable=False),
        _date("at", nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        _text("reason"),
    )
    op.create_index("ix_state_history_entity_id", "state_history", ["entity_id"])
    lock = op.create_table(
        "scheduler_lock", _id(), sa.Column("counter", sa.Integer(), nullable=False)
    )
    op.bulk_insert(lock, [{"id": 1, "counter": 0}])


def _queues_and_workers() -> None:
    op.create_table(
        "environments", _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_table(
        "queues", _id(),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("partition", sa.String(100), nullable=False),
        sa.Column("memory_limit", sa.Integer(), nullable=False),
        sa.Column("time_limit", sa.Integer(), nullable=False),
        sa.Column("cores_per_slot", sa.Integer(), nullable=False),
        sa.Column("max_slots_per_user", sa.Integer(), nullable=False),
    )
    op.create_table(
        "queue_environments",
        sa.Column("queue_id", sa.Integer(), sa.ForeignKey("queues.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("environment_id", sa.Integer(),
                  sa.ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "workers", _id(),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("cores", sa.Integer(), nullable=False),
        sa.Column("memory", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(50), nullable=True),
    )


def _experiments_and_blocks() -> None:
    op.create_table(
        "experiments", _id(),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _letter("status"),
        _date("creation_date", nullable=False), _date("start_date"), _date("end_date"),
        sa.UniqueConstraint("author", "name"),
    )
    op.create_table(
        "cached_files", _id(),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        _letter("status"),
        sa.Column("statistics", sa.JSON(), nullable=True),
        _text("stdout"), _text("stderr"), _text("error_report"),
    )
    op.create_table(
        "blocks", _id(),
        _fk("experiment_id", "experiments.id", "CASCADE", nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        _letter("status"),
        _fk("queue_id", "queues.id", "SET NULL"),
        _fk("environment_id", "environments.id", "SET NULL"),
        sa.Column("required_slots", sa.Integer(), nullable=False),
        sa.Column("execution_order", sa.Integer(), nullable=False),
        _date("start_date"), _date("end_date"),
        sa.UniqueConstraint("experiment_id", "name"),
    )
    op.create_table(
        "block_dependencies",
        sa.Column("block_id", sa.Integer(), sa.ForeignKey("blocks.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("dependency_id", sa.Integer(),
                  sa.ForeignKey("blocks.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "block_outputs",
        sa.Column("block_id", sa.Integer(), sa.ForeignKey("blocks.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("cached_file_id", sa.Integer(),
                  sa.ForeignKey("cached_files.id", ondelete="CASCADE"), primary_key=True),
    )


def _jobs_and_splits() -> None:
    op.create_table(
        "jobs", _id(),
        sa.Column("block_id", sa.Integer(), sa.ForeignKey("blocks.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("key", sa.String(64), nullable=False),
        _date("runnable_date"), _date("start_date"), _date("end_date"),
        sa.Column("split_errors", sa.Integer(), nullable=False),
        sa.Column("mirror", sa.Boolean(), nullable=False),
        sqlite_autoincrement=True,  # deleted ids are never reused (late events)
    )
    op.create_index("ix_jobs_key", "jobs", ["key"])
    op.create_table(
        "results", _id(),
        _fk("block_id", "blocks.id", "SET NULL"),
        sa.Column("split_index", sa.Integer(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        _text("stdout"), _text("stderr"), _text("user_error"), _text("system_error"),
        sa.Column("statistics", sa.JSON(), nullable=True),
        sa.Column("timed_out", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        _date("creation_date", nullable=False),
    )
    op.create_table(
        "job_splits", _id(),
        _fk("job_id", "jobs.id", "CASCADE", nullable=False),
        sa.Column("split_index", sa.Integer(), nullable=False),
        sa.Column("start_index", sa.Integer(), nullable=True),
        sa.Column("end_index", sa.Integer(), nullable=True),
        _fk("worker_id", "workers.id", "SET NULL"),
        _fk("result_id", "results.id", "SET NULL"),
        _letter("status"),
        _date("start_date"), _date("end_date"),
        sa.Column("cache_errors", sa.Integer(), nullable=False),
        sa.Column("submission_tag", sa.String(100), nullable=True),
        sa.Column("slurm_job_id", sa.String(50), nullable=True),
        sa.Column("slurm_element_id", sa.String(60), nullable=True),
        sa.Column("slurm_state", sa.String(50), nullable=True),
        sa.Column("slurm_node", sa.String(200), nullable=True),
        sa.Column("slurm_exit_code", sa.String(20), nullable=True),
        _date("submit_time"), _date("start_time"), _date("end_time"),
        sa.UniqueConstraint("job_id", "split_index"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_job_splits_submission_tag", "job_splits", ["submission_tag"])
    op.create_index("ix_job_splits_slurm_element_id", "job_splits", ["slurm_element_id"])
    op.create_index("ix_job_splits_status", "job_splits", ["status"])


def downgrade() -> None:
    """Drop every table, dependants first."""
    for table in (
        "scheduler_lock", "state_history", "job_splits", "results", "jobs", "block_outputs",
        "block_dependencies", "blocks", "cached_files", "experiments", "workers",
        "queue_environments", "queues", "environments",
    ):
        op.drop_table(table)
