"""Engines, sessions and the Alembic schema: SQLite by default, PostgreSQL the same way.

SQLite runs in WAL mode with foreign keys on; its driver's own transaction
handling is switched off and SQLAlchemy emits ``BEGIN`` itself, so reads and
writes of a helper share one transaction (the SQLAlchemy pysqlite recipe).
The schema is never created with ``create_all``: it comes from the migrations
shipped in the package, found through the package directory, so no working
directory or ini file is needed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30


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
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, record: Any) -> None:
    """Turn on WAL and foreign keys; let SQLAlchemy, not pysqlite, start transactions."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


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
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()
    log.info("database %s upgraded to %s", normalise_url(url).render_as_string(), revision)


def create_session_factory(url: str | URL, *, create_schema: bool = True) -> sessionmaker[Session]:
    """A session factory bound to `url`; with create_schema, the migrations run first."""
    if create_schema:
        upgrade(url)
    return sessionmaker(create_engine_for(url))
