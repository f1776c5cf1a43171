"""Check what bridge.toml names before the bridge uses it: the database URL and the directories it writes.

Without these checks a bad `[database] url` or `spool_dir` surfaces as a
traceback from deep inside SQLAlchemy or pathlib. `url_problem` is static (run
when the configuration is loaded): the URL parses, its driver is installed, an
SQLite file is a file (not a directory, not some other file, not `:memory:`,
which every new connection would see empty). `open_database` and
`upgrade_database` create a missing parent directory of an SQLite file (a fresh
checkout has no var/ yet) and turn a refused connection into one line naming
the file and key; `open_database` also checks the schema's revision (bridge.db_revision).
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
from pathlib import Path

from sqlalchemy import exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from bridge.db import SQLITE_BUSY_TIMEOUT_S
from bridge.errors import ConfigError

log = logging.getLogger(__name__)

EXAMPLES = "sqlite:///path/to/bridge.sqlite or postgresql+psycopg://user@host/database"


def url_problem(url: str) -> str | None:
    """What is wrong with a database URL, phrased as what was expected; None if it looks usable."""
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError) as e:
        return f"a database URL like {EXAMPLES} ({_first_line(e)})"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"a port from 1 to 65535 in the URL, not {parsed.port}"
    problem = _driver_problem(parsed)
    if problem is None and parsed.get_backend_name() == "sqlite":
        problem = _sqlite_problem(parsed)
    return problem


def _driver_problem(url: URL) -> str | None:
    name = url.drivername
    if name in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # as bridge.db.normalise_url
    try:
        url.get_dialect().import_dbapi()
    except (exc.NoSuchModuleError, ImportError) as e:
        return f"an installed database driver, e.g. {EXAMPLES} (cannot load driver {name!r}: {_first_line(e)})"
    return None


def _sqlite_problem(url: URL) -> str | None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory":
        return f"a database file: an in-memory database is lost when the command ends (e.g. {EXAMPLES})"
    path = Path(database)
    if path.is_dir():
        return f"an SQLite database file, but {path} is a directory"
    if path.exists():
        return _sqlite_file_problem(path)
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"a path inside a directory, but {parent} is not a directory"
    return None


def _sqlite_file_problem(path: Path) -> str | None:
    """Whether an existing file is an SQLite database, read by SQLite itself (read-only), never by open().

    Closing any descriptor of a database file drops every POSIX lock this process
    holds on it (fcntl semantics; https://www.sqlite.org/howtocorrupt.html#_posix_advisory_locks_canceled_by_a_separate_thread_doing_close_).
    A daemon that checks a configuration while its engine is open (the command server) would
    then look closed to other processes, the last of which deletes the WAL under it: its later
    commits would be invisible to everyone else. SQLite's own connections share one lock record
    per file and close it only when the last one goes.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        finally:
            connection.close()
    except sqlite3.DatabaseError as e:  # "file is not a database"; OperationalError: unreadable
        if isinstance(e, sqlite3.OperationalError):
            return f"a readable SQLite database file ({path}: {e})"
        return f"an SQLite database file, but {path} is not an SQLite database"
    return None


def writable_dir(path: Path) -> str | None:
    """Create the directory if missing and prove it writable; the problem in words, else None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        return f"a writable directory ({e.strerror or e}: {e.filename or path})"
    return None


def ensure_dir(config_file: Path, key: str, path: Path) -> None:
    """writable_dir, or a ConfigError naming the file and key."""
    problem = writable_dir(path)
    if problem:
        raise ConfigError(f"{config_file}: {key} = {str(path)!r} is invalid: expected {problem}")


def open_database(config_file: Path, url: str, *, may_upgrade: bool = False) -> sessionmaker[Session]:
    """The session factory of the configured database at the code's schema revision, or one error line.

    One SELECT reads the revision (bridge.db_revision); Alembic runs only for a brand-new
    database (no table: first use just works) or, with `may_upgrade` (the daemon's start-up),
    for one behind. Any other command refuses a database behind, naming `beat-bridge db upgrade`:
    a command never migrates a database behind its users' back.
    """
    from bridge.db import create_engine_for, upgrade
    from bridge.db_revision import SchemaAction, SchemaError, code_revisions, decide, read_schema, refusal

    with _database_errors(config_file, url):
        engine = create_engine_for(url)
        with engine.connect() as connection:
            found = read_schema(connection)
        revisions = code_revisions()
        action = decide(found, revisions, may_upgrade)
        if action in (SchemaAction.CREATE, SchemaAction.UPGRADE):
            upgrade(url)
            change = "created at" if action is SchemaAction.CREATE else f"upgraded from {found.revision} to"
            log.info("database %s: schema %s revision %s", _shown(url), change, revisions[-1])
        elif action is not SchemaAction.USE:
            engine.dispose()
            raise SchemaError(refusal(action, found, revisions[-1], _shown(url), config_file))
        return sessionmaker(engine)


def upgrade_database(config_file: Path, url: str) -> None:
    """`beat-bridge db upgrade`: migrate the schema, creating an SQLite file's directory first."""
    from bridge.db import upgrade

    with _database_errors(config_file, url):
        upgrade(url)


class _database_errors:
    """Context: prepare an SQLite parent directory; a refused connection or migration becomes a ConfigError."""

    def __init__(self, config_file: Path, url: str) -> None:
        self.config_file, self.url = config_file, url

    def __enter__(self) -> None:
        problem = url_problem(self.url)
        if problem is None:
            parsed = make_url(self.url)
            if parsed.get_backend_name() == "sqlite":
                problem = writable_dir(Path(parsed.database or ".").absolute().parent)
        if problem:
            raise self._error(f"is invalid: expected {problem}")

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> None:
        if isinstance(error, (exc.DBAPIError, exc.ArgumentError)):
            cause = error.orig if isinstance(error, exc.DBAPIError) else error
            raise self._error(f"cannot connect or migrate: {_first_line(cause)}") from error

    def _error(self, text: str) -> ConfigError:
        shown = _shown(self.url) if url_problem(self.url) is None else self.url
        return ConfigError(f"{self.config_file}: database.url = {shown!r} {text}")


def _shown(url: str) -> str:
    """The URL as a message may show it: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
