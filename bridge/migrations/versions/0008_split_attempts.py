"""Failure-aware resubmission: a split's attempt number, the queue of its next attempt, the nodes it avoids.

Accounting snapshots are kept per attempt: each attempt that ran on Slurm is an element an audit counts,
so a snapshot gains `attempt` and is unique by (split_id, attempt), no longer by split_id.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FK = "fk_job_splits_queue_id"
SNAPSHOTS = "accounting_snapshots"
OLD_UNIQUE = "uq_accounting_snapshots_split_id"  # 0003's unnamed UNIQUE (split_id), as NAMING names it on SQLite
PG_OLD_UNIQUE = "accounting_snapshots_split_id_key"  # what PostgreSQL named it
UNIQUE = "uq_accounting_snapshots_split_id_attempt"
# names for the unnamed constraints batch mode copies on SQLite (PostgreSQL named them itself)
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    """Add attempt (1 for every existing split), queue_id (FK, SET NULL) and exclude_nodes to job_splits;
    attempt (1 for every existing snapshot) to accounting_snapshots, unique with split_id.

    SQLite cannot add a constraint to a table: batch mode copies the table there, keeping job_splits'
    AUTOINCREMENT (split ids are never reused, bridge.models.Job) and naming the constraints it copies
    (so 0003's unnamed UNIQUE (split_id) can be dropped by name).
    """
    with op.batch_alter_table("job_splits", table_kwargs={"sqlite_autoincrement": True},
                              naming_convention=NAMING) as table:
        table.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        table.add_column(sa.Column("queue_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("exclude_nodes", sa.String(200), nullable=True))
        table.create_foreign_key(FK, "queues", ["queue_id"], ["id"], ondelete="SET NULL")
    with op.batch_alter_table(SNAPSHOTS, naming_convention=NAMING) as table:
        table.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        table.drop_constraint(_old_unique(), type_="unique")
        table.create_unique_constraint(UNIQUE, ["split_id", "attempt"])


def _old_unique() -> str:
    """0003's UNIQUE (split_id): PostgreSQL named it itself; SQLite's has no name, NAMING gives it one."""
    return PG_OLD_UNIQUE if op.get_bind().dialect.name == "postgresql" else OLD_UNIQUE


def downgrade() -> None:
    """Back to one snapshot per split: the latest attempt's is kept, the earlier attempts' are deleted."""
    op.execute(sa.text(f"DELETE FROM {SNAPSHOTS} WHERE attempt < (SELECT MAX(s.attempt) FROM {SNAPSHOTS} s "
                       f"WHERE s.split_id = {SNAPSHOTS}.split_id)"))
    with op.batch_alter_table(SNAPSHOTS, naming_convention=NAMING) as table:
        table.drop_constraint(UNIQUE, type_="unique")
        table.create_unique_constraint(_old_unique(), ["split_id"])
        table.drop_column("attempt")
    with op.batch_alter_table("job_splits", table_kwargs={"sqlite_autoincrement": True},
                              naming_convention=NAMING) as table:
        table.drop_constraint(FK, type_="foreignkey")
        table.drop_column("exclude_nodes")
        table.drop_column("queue_id")
        table.drop_column("attempt")
