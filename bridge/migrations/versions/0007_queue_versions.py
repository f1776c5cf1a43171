"""Queue rows hold everything a script renders, with its version; jobs and splits record the version they ran.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Before this, account, QOS, extra directives and template were read from
queues.toml at start-up while partition and limits came from the row: a
restart after an edit rendered a mix. Rows synced before this have a NULL
version until the next `queues sync` (the submitter fills it from the row).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the queue's rendered settings and version, the job's and split's version, and queue_versions."""
    with op.batch_alter_table("queues") as table:
        table.add_column(sa.Column("account", sa.String(100), nullable=True))
        table.add_column(sa.Column("qos", sa.String(100), nullable=True))
        table.add_column(sa.Column("extra_directives", sa.JSON(), nullable=True))
        table.add_column(sa.Column("template", sa.String(255), nullable=True))
        table.add_column(sa.Column("version", sa.String(16), nullable=True))
    with op.batch_alter_table("jobs") as table:
        table.add_column(sa.Column("mapping_version", sa.String(16), nullable=True))
    with op.batch_alter_table("job_splits") as table:
        table.add_column(sa.Column("mapping_version", sa.String(16), nullable=True))
    op.create_table(
        "queue_versions",
        sa.Column("version", sa.String(16), primary_key=True),
        sa.Column("queue_name", sa.String(100), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("queue_versions")
    with op.batch_alter_table("job_splits") as table:
        table.drop_column("mapping_version")
    with op.batch_alter_table("jobs") as table:
        table.drop_column("mapping_version")
    with op.batch_alter_table("queues") as table:
        for name in ("version", "template", "extra_directives", "qos", "account"):
            table.drop_column(name)
