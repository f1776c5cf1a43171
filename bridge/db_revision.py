"""The schema's revision without Alembic: the code's from the migration files, the database's in one SELECT.

Commands must start fast, and importing Alembic and running its upgrade costs more
than the rest of a command (issue 12). So a command compares the database's
revision with the code's and goes on, or refuses in one line when the database is
behind; only `beat-bridge db upgrade`, the daemon's start-up and the creation of a
brand-new database run the migrations (bridge.preflight.open_database decides).

The code's revisions are read from `bridge/migrations/versions/*.py` as text (the
`revision = "..."` and `down_revision = "..."` lines Alembic's template writes), so
a new migration needs no second place to be named in; tests/test_cli_schema_revision.py
checks that this reading agrees with Alembic's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bridge.errors import BridgeError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^(?:"([^"]+)"|'([^']+)'|None)$""")


class SchemaError(BridgeError):
    """The database's schema is not the one this beat-bridge needs: run `beat-bridge db upgrade`."""


class SchemaAction(str, Enum):
    """What opening a database must do before a command uses it."""

    USE = "use"  # at the code's revision
    CREATE = "create"  # brand-new (no table at all): run the migrations, whatever the command
    UPGRADE = "upgrade"  # behind, and the caller may migrate (`db upgrade`, `run`)
    REFUSE_BEHIND = "behind"  # behind, and the command only uses the schema
    REFUSE_UNKNOWN = "unknown"  # a revision this code does not know (a newer bridge wrote it)
    REFUSE_FOREIGN = "foreign"  # tables, but no Alembic revision: not made by `beat-bridge db upgrade`


@dataclass(frozen=True)
class DatabaseSchema:
    """What one look at a database found: its Alembic revision (None: none recorded) and whether it has tables."""

    revision: str | None
    has_tables: bool


def code_revisions(migrations: Path = MIGRATIONS) -> tuple[str, ...]:
    """The migrations' revisions, oldest first, following each file's down_revision; the last is the head."""
    parents: dict[str, str | None] = {}
    for path in sorted((migrations / "versions").glob("*.py")):
        found = dict((key, _literal(path, value)) for key, value in _ASSIGNMENT.findall(path.read_text("utf-8")))
        if "revision" not in found or found["revision"] is None:
            raise ValueError(f"{path}: no `revision = \"...\"` line")
        parents[found["revision"]] = found.get("down_revision")
    children = {parent: child for child, parent in parents.items()}
    if len(children) != len(parents):
        raise ValueError(f"{migrations}: the migrations branch (two revise the same one); merge them in Alembic")
    chain, current = [], children.get(None)
    while current is not None:
        chain.append(current)
        current = children.get(current)
    if len(chain) != len(parents):
        raise ValueError(f"{migrations}: revisions {sorted(set(parents) - set(chain))} are not on the chain")
    return tuple(chain)


def _literal(path: Path, value: str) -> str | None:
    match = _QUOTED.match(value)
    if match is None:
        raise ValueError(f"{path}: expected a quoted revision or None, not {value!r}")
    return match.group(1) or match.group(2)


def decide(found: DatabaseSchema, revisions: tuple[str, ...], may_upgrade: bool) -> SchemaAction:
    """What to do with a database at `found` when the code has `revisions` (oldest first)."""
    if found.revision is None:
        return SchemaAction.REFUSE_FOREIGN if found.has_tables else SchemaAction.CREATE
    if found.revision == revisions[-1]:
        return SchemaAction.USE
    if found.revision not in revisions:
        return SchemaAction.REFUSE_UNKNOWN
    return SchemaAction.UPGRADE if may_upgrade else SchemaAction.REFUSE_BEHIND


def refusal(action: SchemaAction, found: DatabaseSchema, head: str, database: str, config_file: Path) -> str:
    """The one line a refused command prints: the database, its revision, the code's, and what to run."""
    upgrade = f"`beat-bridge db upgrade --config {config_file}`"
    if action is SchemaAction.REFUSE_BEHIND:
        return (f"database {database} is at schema revision {found.revision}, this beat-bridge needs {head}: "
                f"run {upgrade} (stop `beat-bridge run` on every host first; docs/deployment.md, Upgrading)")
    if action is SchemaAction.REFUSE_UNKNOWN:
        return (f"database {database} is at schema revision {found.revision}, which this beat-bridge (at {head}) "
                f"does not know: a newer beat-bridge migrated it; run that version")
    return (f"database {database} has tables but no Alembic revision (no alembic_version row): it was not made by "
            f"{upgrade}; point database.url at an empty database or the bridge's own")


def read_schema(connection) -> DatabaseSchema:
    """The database's revision in one SELECT; only when that fails, whether it has any table at all.

    The SELECT runs in a transaction of its own: a failed statement aborts a PostgreSQL transaction.
    """
    from sqlalchemy import exc, inspect, text

    try:
        with connection.begin():
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except exc.DBAPIError:  # no such table, or the database failed: its table list tells which
        tables = inspect(connection).get_table_names()
        connection.rollback()  # the inspector's implicit transaction
        if "alembic_version" in tables:
            raise
        return DatabaseSchema(None, bool(tables))
    return DatabaseSchema("+".join(sorted(rows)) or None, True)  # two rows: branches this code never makes
