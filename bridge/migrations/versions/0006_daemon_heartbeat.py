"""The daemon's heartbeat row (`beat-bridge status`), and the split index on accounting snapshots.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

`experiments show` joins a settled split's snapshot with its Result row by
(block, split index); the element id's array index equals the split index only
below MaxArraySize, so the index is kept (nullable: older snapshots lack it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create daemon_heartbeat with its one row; add accounting_snapshots.split_index."""
    heartbeat = op.create_table(
        "daemon_heartbeat",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("beat_at", sa.DateTime(), nullable=True),
        sa.Column("cycle_s", sa.Float(), nullable=True),
        sa.Column("next_in_s", sa.Float(), nullable=True),
        sa.Column("cycles", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
        sa.Column("active", sa.Integer(), nullable=True),
        sa.Column("slurm_calls", sa.Integer(), nullable=True),
        sa.Column("slurm_answered_at", sa.DateTime(), nullable=True),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
    )
    op.bulk_insert(heartbeat, [{"id": 1, "cycles": 0, "failures": 0}])
    with op.batch_alter_table("accounting_snapshots") as table:
        table.add_column(sa.Column("split_index", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounting_snapshots") as table:
        table.drop_column("split_index")
    op.drop_table("daemon_heartbeat")
