"""Wake the idle daemon when another process changes the database: new work starts at once.

The daemon's Slurm polling backs off while idle (poller.loop); without this, an
experiment the web server schedules waits for the next poll, up to
[poll] max_interval. Instead the daemon waits on the database:

- PostgreSQL: the helpers that create work (schedule_experiment, cancel_experiment,
  unblocking dependents) call `notify` inside their own transaction, so the
  NOTIFY is delivered at their commit and never for a rolled-back change
  (https://www.postgresql.org/docs/current/sql-notify.html). The daemon LISTENs
  on a dedicated autocommit connection and select()s on its socket. The payload
  names the sending process, so the daemon ignores the NOTIFYs of its own cycle.
- SQLite: no NOTIFY; `PRAGMA data_version` on a kept connection changes when any
  other connection commits (https://www.sqlite.org/pragma.html#pragma_data_version),
  read every TICK seconds (a read of the WAL index, no lock). The daemon's own
  sessions are other connections too: `exclude_own(sessions)` reads data_version
  just before and just after each of their commits. A change seen before one
  counts (another process committed meanwhile); the one after is the new baseline,
  for a transaction that changed rows only. SQLite has one writer at a time, so
  nothing else can commit between the two reads of a transaction that has written;
  a read-only one holds no lock, so after it the baseline stays and the next
  read decides. No commit by another process is ever mistaken for ours.

`changed()` is the plain signal ("another process committed since I last
looked"), and `subscribe` registers a callback run on every change seen, for
whatever keeps state between cycles. A wake-up channel that fails (PostgreSQL
restarting) is logged and reopened later; meanwhile waiting is plain sleeping,
so the daemon never depends on it.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

CHANNEL = "beat_bridge_work"
SENDER = f"{socket.gethostname()}:{os.getpid()}"  # this process, in the payload of its NOTIFYs
# Sessions made with info={SENDER_KEY: name} notify as `name`: the commands a daemon runs for other processes
# (bridge.command_server) are another process's work to its own loop.
SENDER_KEY = "wake_sender"
TICK = 0.1  # seconds between two cheap checks (SQLite data_version, the stop flag)
REOPEN_AFTER = 5.0  # seconds before a failed LISTEN connection is opened again


def notify(session: Session) -> None:
    """Tell a LISTENing daemon that work was created, in the session's transaction (PostgreSQL only).

    Delivered when the transaction commits, dropped when it rolls back. On
    SQLite nothing to do: the commit itself changes data_version.
    """
    if session.get_bind().dialect.name == "postgresql":
        sender = session.info.get(SENDER_KEY, SENDER)
        session.execute(text("SELECT pg_notify(:channel, :sender)"), {"channel": CHANNEL, "sender": sender})


class Wake:
    """The database's change signal; this base never sees a change (waiting is sleeping)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call listener() every time a change by another process is seen."""
        self._listeners.append(listener)

    def mark(self) -> None:
        """What the database holds now is known (this process just wrote it): only later changes count."""

    def exclude_own(self, sessions: Any) -> None:
        """Never count the commits of these sessions (a sessionmaker) as changes: they are this daemon's."""

    def changed(self) -> bool:
        """Whether another process committed since the last mark() or changed(); never blocks."""
        seen = self._poll(0.0)
        if seen:
            for listener in self._listeners:
                listener()
        return seen

    def wait(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep up to `seconds`; True as soon as another process commits, False at the end or on stop."""
        deadline = time.monotonic() + seconds
        while not (stop is not None and stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._poll(min(TICK, left)):
                for listener in self._listeners:
                    listener()
                return True
        return False

    def close(self) -> None:
        """Release the kept connection."""

    def _poll(self, timeout: float) -> bool:
        """Wait up to `timeout` for a change; whether one came."""
        if timeout > 0:
            time.sleep(timeout)
        return False


_BEGUN = "wake_begun"  # session.info: (connection, its total_changes) when our transaction began
_WROTE = "wake_wrote"  # session.info: whether our committing transaction changed rows


def _total_changes(connection: Any) -> int:
    """Rows the SQLite connection under a SQLAlchemy Connection has changed since it was opened."""
    return connection.connection.dbapi_connection.total_changes


class DataVersionWake(Wake):
    """SQLite: `PRAGMA data_version` of a kept connection, compared with its value at mark()."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._seen: int | None = None
        self._pending = False  # another process committed while one of ours was open
        self._own: Any = None  # the sessionmaker whose commits are ours (exclude_own)

    def mark(self) -> None:
        if self._own is None or self._seen is None:  # with exclude_own, our commits never count anyway
            self._seen = self._version()

    def exclude_own(self, sessions: Any) -> None:
        for name, hook in self._own_hooks():
            event.listen(sessions, name, hook)
        self._own = sessions

    def _own_hooks(self) -> tuple[tuple[str, Callable[..., None]], ...]:
        return (("after_begin", self._own_begin), ("before_commit", self._before_own_commit),
                ("after_commit", self._after_own_commit))

    def _own_begin(self, session: Session, transaction: Any, connection: Any) -> None:
        session.info[_BEGUN] = connection, _total_changes(connection)

    def _before_own_commit(self, session: Session) -> None:
        session.flush()  # our pending changes are written before we judge whether we wrote
        version = self._version()
        if version is not None and self._seen is not None and version != self._seen:
            self._pending = True
        begun = session.info.pop(_BEGUN, None)
        # Only a transaction that changed rows holds SQLite's write lock to its commit, so that no other
        # commit can come between this read and the one after it; after a read-only one, _poll decides.
        session.info[_WROTE] = begun is not None and _total_changes(begun[0]) != begun[1]

    def _after_own_commit(self, session: Session) -> None:
        if session.info.pop(_WROTE, False):
            self._seen = self._version()

    def close(self) -> None:
        if self._own is not None:
            for name, hook in self._own_hooks():
                event.remove(self._own, name, hook)
            self._own = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _poll(self, timeout: float) -> bool:
        if timeout > 0:
            time.sleep(timeout)
        version = self._version()
        if version is None or self._seen is None:
            self._seen = version
            return False
        changed, self._seen = self._pending or version != self._seen, version
        self._pending = False
        return changed

    def _version(self) -> int | None:
        try:
            if self._connection is None:
                self._connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            return self._connection.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as e:
            log.warning("wake-up on database change: cannot read data_version of %s: %s", self.path, e)
            self.close()
            return None


class ListenWake(Wake):
    """PostgreSQL: LISTEN on a dedicated autocommit connection; select() on its socket."""

    def __init__(self, conninfo: str, connect: Callable[[str], Any] | None = None, ignore: str = SENDER) -> None:
        super().__init__()
        self.conninfo, self.ignore = conninfo, ignore
        self._connect = connect or _listen_connection
        self._connection: Any = None
        self._failed_at = -REOPEN_AFTER

    def mark(self) -> None:
        self._open()  # NOTIFYs that came during the cycle still count: none is ever dropped here

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _open(self) -> Any:
        if self._connection is None and time.monotonic() - self._failed_at >= REOPEN_AFTER:
            try:
                self._connection = self._connect(self.conninfo)
            except Exception as e:  # noqa: BLE001 - any driver error: sleep instead, reopen later
                self._failed(e)
        return self._connection

    def _failed(self, e: Exception) -> None:
        log.warning("wake-up on database change: LISTEN connection lost (%s); polling only, retried in %.0f s",
                    e, REOPEN_AFTER)
        self._failed_at = time.monotonic()
        try:
            self.close()
        except Exception:  # noqa: BLE001 - closing a broken connection may fail too
            self._connection = None

    def _poll(self, timeout: float) -> bool:
        connection = self._open()
        if connection is None:
            return super()._poll(timeout)
        try:
            ready, _, _ = select.select([connection.fileno()], [], [], timeout)
            if not ready and timeout > 0:
                return False
            return any(n.payload != self.ignore for n in connection.notifies(timeout=0))
        except Exception as e:  # noqa: BLE001 - a lost server: plain sleeping until it is back
            self._failed(e)
            return False


def _listen_connection(conninfo: str) -> Any:
    """An autocommit psycopg connection LISTENing on CHANNEL."""
    import psycopg

    connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    connection.execute(f"LISTEN {CHANNEL}")
    return connection


def listen_url(engine: Engine) -> str:
    """The engine's PostgreSQL URL as libpq takes it (no SQLAlchemy driver name)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def open_wake(engine: Engine) -> Wake:
    """The change signal for the engine's database: LISTEN on PostgreSQL, data_version on an SQLite file."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return ListenWake(listen_url(engine))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return DataVersionWake(url.database)
    return Wake()
