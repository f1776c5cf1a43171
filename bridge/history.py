"""Guarded transitions, their audit trail, and the one lock every state change takes.

Contract of every state-changing helper: it runs as one transaction of its own.
It commits what the session holds, takes the scheduler lock (first statement of
the new transaction), reloads the rows it was given by id, changes them with
guarded updates (``UPDATE ... WHERE id = :id AND status = :seen``, row count
checked) and commits. A row gone, or in a status the event does not apply to,
is logged as a warning and left alone: repeated, late and out-of-order events
are no-ops, never exceptions.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import inspect, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from bridge.models import SchedulerLock, StateHistory

log = logging.getLogger(__name__)

T = TypeVar("T")


def begin_locked(session: Session) -> None:
    """Start a fresh transaction holding the scheduler lock (one row, one UPDATE).

    Everything a helper reads afterwards is current: on PostgreSQL the row lock
    serialises helpers whatever order they touch rows in (no deadlocks); on
    SQLite the UPDATE takes the write lock before any read, so no snapshot can
    go stale under us.
    """
    if session.in_transaction():
        session.commit()
    taken = session.execute(
        update(SchedulerLock).where(SchedulerLock.id == 1)
        .values(counter=SchedulerLock.counter + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:  # a schema made without the migration (create_all) lacks the row
        log.warning("scheduler_lock row missing (schema not from `db upgrade`?): adding it")
        session.add(SchedulerLock(id=1, counter=1))
        session.flush()
    if not session.expire_on_commit:
        session.expire_all()  # read everything afresh (the commit above expired nothing)


@contextmanager
def locked(session: Session) -> Iterator[Session]:
    """One helper's transaction: locked first, committed at the end, rolled back on error."""
    begin_locked(session)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    session.commit()


def identity_of(obj: Any) -> int | None:
    """The primary key of an instance or an id, without loading anything (None if unknown)."""
    if obj is None or isinstance(obj, int):
        return obj
    state = inspect(obj, raiseerr=False)
    if state is None or state.identity is None:
        return None
    return state.identity[0]


def reload(session: Session, cls: type[T], obj: Any, *, lock: bool = False) -> T | None:
    """The current row of `obj` (an instance or id) in this session, or None if it is gone."""
    pk = identity_of(obj)
    if pk is None:
        log.warning("%s %r has no identity (never saved?): ignored", cls.__name__, obj)
        return None
    row = session.get(cls, pk, populate_existing=True, with_for_update=lock or None)
    if row is None:
        log.warning("%s %s no longer exists: event ignored", cls.__name__, pk)
    return row


def transition(
    session: Session,
    obj: Any,
    to: enum.Enum,
    allowed: Iterable[enum.Enum],
    *,
    source: str,
    reason: str | None = None,
    warn: bool = False,
    **values: Any,
) -> bool:
    """Move `obj` to status `to` if it is in one of `allowed`; True if it moved.

    One guarded UPDATE on the status seen, its row count checked, and one
    StateHistory row. The instance is updated in place without a reload.
    `warn` logs a refused transition as a warning (an event that does not
    apply); internal "make sure" transitions are refused quietly.
    """
    cls = type(obj)
    seen = obj.status
    if seen not in set(allowed):
        (log.warning if warn else log.debug)("%s %s is %s, not in %s: %s ignored", cls.__name__, obj.id,
                    _letter(seen), "".join(_letter(a) for a in allowed), source)
        return False
    if seen == to and not values:
        return True
    stmt = (
        update(cls).where(cls.id == obj.id, cls.status == seen)
        .values(status=to, **values).execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:
        log.warning("%s %s changed under %s: ignored", cls.__name__, obj.id, source)
        return False
    for name, value in {"status": to, **values}.items():
        set_committed_value(obj, name, value)
    if seen != to:
        record(session, obj, seen, to, source=source, reason=reason)
        log.info("%s %s%s: %s -> %s (%s)", cls.__name__, obj.id, _slurm(obj), _letter(seen),
                 _letter(to), source)
    return True


def guarded_set(session: Session, obj: Any, condition: Any, *, source: str, **values: Any) -> bool:
    """Set column `values` on `obj` only where `condition` holds; True if the row changed."""
    cls = type(obj)
    stmt = (
        update(cls).where(cls.id == obj.id, condition).values(**values)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:
        log.debug("%s %s: %s not applied", cls.__name__, obj.id, source)
        return False
    for name, value in values.items():
        set_committed_value(obj, name, value)
    return True


def record(
    session: Session, obj: Any, seen: Any, to: Any, *, source: str, reason: str | None = None
) -> None:
    """Add the StateHistory row of one transition (or creation, when `seen` is None)."""
    session.add(StateHistory(
        entity=type(obj).__tablename__, entity_id=obj.id,
        from_status=None if seen is None else _letter(seen), to_status=_letter(to),
        source=source, reason=reason,
    ))


def _slurm(obj: Any) -> str:
    """" job J, Slurm 123_4" for a split (what an admin greps for), "" otherwise."""
    if not hasattr(obj, "slurm_element_id"):
        return ""
    return f" job {obj.job_id}, Slurm {obj.slurm_element_id or '-'}"


def _letter(status: Any) -> str:
    """The stored letter of a status (an enum member or a letter)."""
    return status.value if isinstance(status, enum.Enum) else str(status)
