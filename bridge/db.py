"""Engines, sessions and the Alembic schema: SQLite by default, PostgreSQL the same way.

SQLite runs in WAL mode with foreign keys on; its driver's own transaction
handling is switched off and SQLAlchemy emits ``BEGIN`` itself, so reads and
writes of a helper share one transaction (the SQLAlchemy pysqlite recipe).
Commands that write beside the running daemon (add, schedule, cancel, sync) use
`write_sessions`: each of their transactions takes the write lock first.
The schema is never created with ``create_all``: it comes from the migrations
shipped in the package, found through the package directory, so no working
directory or ini file is needed.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 10  # a PostgreSQL server restarting or unreachable fails the cycle, never hangs it
WRITE_LOCK = "bridge_write_lock"  # execution option of write_sessions' engine
MIGRATION_LOCK = 0x6265617442  # pg_advisory_xact_lock key of `db upgrade`


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; a bare ``postgresql://`` gets the psycopg 3 driver."""
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def create_engine_for(url: str | URL) -> Engine:
    """An engine for the URL, with the SQLite settings the helpers rely on."""
    url = normalise_url(url)
    if url.get_backend_name() != "sqlite":
        # pre-ping: a connection the server dropped (restart, pg_terminate_backend) is replaced at checkout
        libpq = url.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in url.query
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if libpq else {}
        engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
        event.listen(engine, "begin", _postgresql_on_begin)
        return engine
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    """Turn on WAL and foreign keys; let SQLAlchemy, not pysqlite, start transactions."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    _enable_wal(cursor)
    cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL (persistent); retried, as the switch ignores the busy timeout.

    Only a brand-new database file needs the switch; while another connection
    writes to it, SQLite answers "database is locked" at once instead of waiting.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(connection: Any) -> None:
    """BEGIN, or BEGIN IMMEDIATE (write lock first) for connections that ask for it."""
    options = connection.get_execution_options()
    immediate = options.get("sqlite_immediate") or options.get(WRITE_LOCK)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _postgresql_on_begin(connection: Any) -> None:
    """For write sessions: the scheduler lock row first, as every helper takes it (bridge.history)."""
    if connection.get_execution_options().get(WRITE_LOCK):
        connection.exec_driver_sql("SELECT id FROM scheduler_lock WHERE id = 1 FOR UPDATE")


def write_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions on the same engine whose every transaction takes the write lock before its first read.

    For commands that write while `beat-bridge run` cycles. On SQLite a deferred
    transaction that has read cannot write once another connection committed
    after its read: SQLite answers "database is locked" at once, whatever the
    busy timeout (SQLITE_BUSY_SNAPSHOT, https://www.sqlite.org/rescode.html#busy_snapshot).
    BEGIN IMMEDIATE waits for the lock (busy timeout) instead. On PostgreSQL the
    scheduler lock row queues the command behind the daemon's helper
    transaction instead of interleaving with it.
    """
    return sessionmaker(sessions.kw["bind"].execution_options(**{WRITE_LOCK: True}), info=sessions.kw.get("info"))


def alembic_config(url: str | URL) -> Any:
    """An Alembic Config for the packaged migrations and this database, built in code."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    rendered = normalise_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (``beat-bridge db upgrade``)."""
    from alembic import command

    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            connection.execution_options(sqlite_immediate=True)
            with connection.begin():
                _lock_for_migration(connection)
                config = alembic_config(url)
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    finally:
        engine.dispose()
    log.info("database %s upgraded to %s", normalise_url(url).render_as_string(), revision)


def _lock_for_migration(connection: Connection) -> None:
    """Serialise concurrent upgrades: two processes starting at once must not both migrate.

    SQLite: the transaction began IMMEDIATE (write lock first). PostgreSQL: an
    advisory lock held until commit.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


def create_session_factory(url: str | URL, *, create_schema: bool = True) -> sessionmaker[Session]:
    """A session factory bound to `url`; with create_schema, the migrations run first."""
    if create_schema:
        upgrade(url)
    return sessionmaker(create_engine_for(url))
