"""Every queue mapping a submission rendered with, kept by its version (bridge.queue_versions).

A queue's row holds the mapping synced last; a job keeps the version of its
first array, and its later arrays render with the settings stored here under
that version, so a sync never changes the partition or limits of work in
flight. Rows are never updated (a version is a hash of its settings) and kept:
audits and `experiments show` name versions long after the job is gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bridge.models import Base, utcnow


class QueueVersion(Base):
    """One queue's rendered settings (bridge.queues.QueueSettings as JSON) under their version."""

    __tablename__ = "queue_versions"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    queue_name: Mapped[str] = mapped_column(String(100))
    settings: Mapped[str] = mapped_column(Text)  # JSON, sorted keys: QueueSettings.to_json()
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<QueueVersion {self.version} of {self.queue_name}>"
