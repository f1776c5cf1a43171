"""Reconcile misses: submitted splits that `beat-bridge reconcile` did not find on Slurm, run after run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create reconcile_misses (bridge.models_reconcile.ReconcileMiss)."""
    op.create_table(
        "reconcile_misses",
        sa.Column("split_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("array_id", sa.String(50), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("first_miss", sa.DateTime(), nullable=False),
        sa.Column("last_miss", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reconcile_misses")
