"""The daemon's heartbeat: one row, rewritten by one UPDATE at the end of every cycle (bridge.heartbeat).

`beat-bridge status` reads it to say what the daemon is doing without asking
the daemon or Slurm: when its last cycle ended and how long it took, when the
next is due (the adaptive wait, which is the backoff after a failure), the
last error, and when Slurm last answered its poll. Two daemons on one database
(failover) write the same row: it says which one wrote last.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bridge.models import Base

HEARTBEAT_ID = 1  # the one row, inserted by migration 0006


class DaemonHeartbeat(Base):
    """What the last cycle of `beat-bridge run` did, as the daemon saw it."""

    __tablename__ = "daemon_heartbeat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    beat_at: Mapped[datetime | None] = mapped_column(DateTime)  # the last cycle's end, naive UTC
    cycle_s: Mapped[float | None] = mapped_column(Float)  # how long that cycle took
    next_in_s: Mapped[float | None] = mapped_column(Float)  # the wait before the next: backoff after a failure
    cycles: Mapped[int] = mapped_column(Integer, default=0)  # cycles of this daemon process so far
    failures: Mapped[int] = mapped_column(Integer, default=0)  # failed cycles in a row (0: the last one was fine)
    last_error: Mapped[str | None] = mapped_column(Text)  # kept after recovery, with its time
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime)
    active: Mapped[int | None] = mapped_column(Integer)  # splits on Slurm the last poll followed
    slurm_calls: Mapped[int | None] = mapped_column(Integer)  # squeue + sacct calls of the last poll that ran
    slurm_answered_at: Mapped[datetime | None] = mapped_column(DateTime)  # the last poll whose Slurm calls answered
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)  # a clean stop (SIGTERM); the next beat clears it

    def __repr__(self) -> str:
        return f"<DaemonHeartbeat {self.host}:{self.pid} at {self.beat_at}>"
