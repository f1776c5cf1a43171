"""Failure-aware resubmission: a split's attempt number, the queue of its next attempt, the nodes it avoids.

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
# names for the unnamed constraints batch mode copies on SQLite (PostgreSQL named them itself)
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s", "uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    """Add attempt (1 for every existing split), queue_id (FK, SET NULL) and exclude_nodes to job_splits.

    SQLite cannot add a constraint to a table: batch mode copies job_splits there, keeping its
    AUTOINCREMENT (split ids are never reused, bridge.models.Job) and naming the constraints it copies.
    """
    with op.batch_alter_table("job_splits", table_kwargs={"sqlite_autoincrement": True},
                              naming_convention=NAMING) as table:
        table.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        table.add_column(sa.Column("queue_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("exclude_nodes", sa.String(200), nullable=True))
        table.create_foreign_key(FK, "queues", ["queue_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("job_splits", table_kwargs={"sqlite_autoincrement": True},
                              naming_convention=NAMING) as table:
        table.drop_constraint(FK, type_="foreignkey")
        table.drop_column("exclude_nodes")
        table.drop_column("queue_id")
        table.drop_column("attempt")
