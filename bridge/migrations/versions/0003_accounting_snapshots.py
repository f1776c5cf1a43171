"""Accounting snapshots: sacct's figures of each settled split, kept after job and split rows are deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _null(name: str, kind: sa.types.TypeEngine) -> sa.Column:
    return sa.Column(name, kind, nullable=True)


def upgrade() -> None:
    """Create accounting_snapshots (bridge.models_audit.AccountingSnapshot); no foreign keys, on purpose."""
    op.create_table(
        "accounting_snapshots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("split_id", sa.Integer(), nullable=False, unique=True),
        sa.Column("split_status", sa.String(1), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("experiment_name", sa.String(200), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("block_name", sa.String(200), nullable=False),
        _null("queue_name", sa.String(100)),
        _null("submission_tag", sa.String(100)),
        sa.Column("array_job_id", sa.Integer(), nullable=False),
        sa.Column("element_id", sa.String(60), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        _null("last_attempt", sa.DateTime()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _null("partition", sa.String(100)),
        _null("account", sa.String(100)),
        _null("qos", sa.String(100)),
        _null("node_list", sa.String(1000)),
        _null("alloc_cpus", sa.Integer()),
        _null("req_mem_mb", sa.Integer()),
        _null("max_rss_kb", sa.BigInteger()),
        _null("total_cpu_s", sa.Float()),
        _null("elapsed_s", sa.Integer()),
        _null("timelimit_min", sa.Integer()),
        _null("submit", sa.DateTime()),
        _null("eligible", sa.DateTime()),
        _null("start", sa.DateTime()),
        _null("end", sa.DateTime()),
        _null("state", sa.String(50)),
        _null("exit_code", sa.String(20)),
    )
    op.create_index("ix_accounting_snapshots_experiment_id", "accounting_snapshots", ["experiment_id"])
    op.create_index("ix_accounting_snapshots_element_id", "accounting_snapshots", ["element_id"])
    op.create_index("ix_accounting_snapshots_status", "accounting_snapshots", ["status"])
    op.create_index("ix_accounting_snapshots_last_attempt", "accounting_snapshots", ["last_attempt"])


def downgrade() -> None:
    op.drop_table("accounting_snapshots")
