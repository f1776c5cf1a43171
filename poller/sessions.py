"""The daemon's sessions after a database error: closed quietly, discarded, named in one line.

A database that goes away mid-cycle (a PostgreSQL restart, SQLite locked) must
never end the daemon (poller.loop): these close and drop what is left of a
session, and say which error it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger("poller.loop")


@contextmanager
def closing_quietly(session: Session) -> Iterator[Session]:
    """The session, closed at the end; a database gone by then is logged, never the daemon's end.

    Reads after the cycle (the result watch) begin a transaction that close() rolls back:
    on a connection the server dropped meanwhile (a PostgreSQL restart) that rollback
    raises, and nothing else in the loop would have caught it.
    """
    try:
        yield session
    finally:
        try:
            session.close()
        except DBAPIError as e:
            log.debug("session closed after a database error: %s", database_error(e))


def discard(session: Session) -> None:
    """Give up the session's transaction and connection after a database error.

    The rollback itself may fail on a dead connection; SQLAlchemy then
    invalidates it, and the pool (pre-ping on PostgreSQL) hands out a fresh one.
    """
    try:
        session.rollback()
    except DBAPIError as e:
        log.debug("rollback after a database error failed too: %s", database_error(e))
    session.close()


def database_error(e: DBAPIError) -> str:
    """One line naming the database error: driver exception class and its first line."""
    orig = e.orig if e.orig is not None else e
    lines = str(orig).strip().splitlines() or [""]
    lost = ", connection lost" if e.connection_invalidated else ""
    return f"database error{lost}: {type(orig).__name__}: {lines[0]}"
