"""Accounting snapshots gain what audits group, filter and explain by: algorithm, mapping version, verdict, end.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add algorithm, mapping_version and verdict (nullable: older rows never had them); index the end time."""
    with op.batch_alter_table("accounting_snapshots") as table:
        table.add_column(sa.Column("algorithm", sa.String(200), nullable=True))
        table.add_column(sa.Column("mapping_version", sa.String(16), nullable=True))
        table.add_column(sa.Column("verdict", sa.String(40), nullable=True))
    op.create_index("ix_accounting_snapshots_end", "accounting_snapshots", ["end"])


def downgrade() -> None:
    op.drop_index("ix_accounting_snapshots_end", "accounting_snapshots")
    with op.batch_alter_table("accounting_snapshots") as table:
        table.drop_column("verdict")
        table.drop_column("mapping_version")
        table.drop_column("algorithm")
