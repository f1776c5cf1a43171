"""The daemon's heartbeat: written once per cycle (one UPDATE), read by `beat-bridge status`.

`beat` is the loop's hook (poller.loop): after each cycle, in its own short
transaction, one UPDATE of the one row of bridge.models_daemon. It never
raises: a database that cannot take it (down, locked) already failed the
cycle, and the next cycle writes again. `read` gives the row as plain values.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.models import utcnow
from bridge.models_daemon import HEARTBEAT_ID, DaemonHeartbeat

log = logging.getLogger(__name__)

HOST = socket.gethostname()[:255]


class CycleFacts(Protocol):
    """What a beat needs of a cycle's report (bridge.cycle.CycleReport)."""

    poll: Any  # PollResult | None: active, squeue_calls, sacct_calls
    error: str | None


@dataclass(frozen=True)
class Heartbeat:
    """The heartbeat row as plain values (None everywhere: no daemon ever ran on this database)."""

    host: str | None = None
    pid: int | None = None
    beat_at: datetime | None = None
    cycle_s: float | None = None
    next_in_s: float | None = None
    cycles: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    active: int | None = None
    slurm_calls: int | None = None
    slurm_answered_at: datetime | None = None
    stopped_at: datetime | None = None


FIELDS = tuple(Heartbeat.__dataclass_fields__)


def values(report: CycleFacts, cycles: int, cycle_s: float, next_in_s: float, now: datetime) -> dict[str, Any]:
    """The columns one cycle sets; Slurm's columns only when its poll asked Slurm (else they keep their time)."""
    failed = report.error is not None
    row: dict[str, Any] = {
        "host": HOST, "pid": os.getpid(), "beat_at": now, "cycle_s": round(cycle_s, 3),
        "next_in_s": round(next_in_s, 3), "cycles": cycles,
        "failures": DaemonHeartbeat.failures + 1 if failed else 0, "stopped_at": None,
    }
    if failed:
        row.update(last_error=report.error[:4000], last_error_at=now)
    poll = report.poll
    if poll is not None:
        row["active"] = poll.active
        calls = poll.squeue_calls + poll.sacct_calls
        if calls:
            row.update(slurm_calls=calls, slurm_answered_at=now)
    return row


def beat(sessions: sessionmaker[Session], report: CycleFacts, cycles: int, cycle_s: float,
         next_in_s: float) -> None:
    """One UPDATE of the heartbeat row in its own transaction; a failure is logged, never raised."""
    try:
        with sessions() as session:
            session.execute(update(DaemonHeartbeat).where(DaemonHeartbeat.id == HEARTBEAT_ID)
                            .values(values(report, cycles, cycle_s, next_in_s, utcnow())))
            session.commit()
    except Exception as e:  # the database down or locked: the cycle said so already; the next beat writes
        log.debug("heartbeat not written: %s", e)


def stopped(sessions: sessionmaker[Session]) -> None:
    """A clean stop of this process (`run` after SIGTERM): the row says so, if this process wrote it last."""
    try:
        with sessions() as session:
            session.execute(update(DaemonHeartbeat).where(
                DaemonHeartbeat.id == HEARTBEAT_ID, DaemonHeartbeat.host == HOST, DaemonHeartbeat.pid == os.getpid(),
            ).values(stopped_at=utcnow()))
            session.commit()
    except Exception as e:  # as in beat(): never the reason a stop fails
        log.debug("heartbeat's stop not written: %s", e)


def read(session: Session) -> Heartbeat:
    """The heartbeat row (an empty Heartbeat if the row is missing)."""
    row = session.execute(select(*(getattr(DaemonHeartbeat, name) for name in FIELDS))
                          .where(DaemonHeartbeat.id == HEARTBEAT_ID)).first()
    return Heartbeat(**row._asdict()) if row is not None else Heartbeat()



