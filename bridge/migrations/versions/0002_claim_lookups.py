"""Claim look-ups: submission tags whose sbatch outcome is unknown, kept until Slurm answers for sure.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create claim_lookups (bridge.models.ClaimLookup)."""
    op.create_table(
        "claim_lookups",
        sa.Column("tag", sa.String(100), primary_key=True),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("first_miss", sa.DateTime(), nullable=True),
        sa.Column("stuck", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("claim_lookups")
