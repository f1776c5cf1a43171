"""Commands compare the database's schema revision with the code's instead of migrating (bridge.db_revision).

A database behind is refused in one line naming it, both revisions and `beat-bridge db upgrade`,
and is left as it was; `db upgrade` (and the daemon's start-up) migrate it; a brand-new one is
created on first use. SQLite and PostgreSQL: a failed SELECT aborts a PostgreSQL transaction.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from config_files import MINIMAL, write
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bridge.app import open_app
from bridge.db import MIGRATIONS, create_engine_for, upgrade
from bridge.db_revision import DatabaseSchema, SchemaAction, SchemaError, code_revisions, decide
from bridge.preflight import open_database

REVISIONS = code_revisions()
HEAD, BEHIND = REVISIONS[-1], REVISIONS[-2]


def bridge_toml(tmp_path: Path, url: str) -> Path:
    return write(tmp_path, MINIMAL + f'[database]\nurl = "{url}"\n')


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=120)


def revision_of(url: str) -> str | None:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def test_the_code_revisions_read_from_the_files_are_alembics_chain() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    assert REVISIONS == tuple(reversed([s.revision for s in script.walk_revisions()]))
    assert HEAD == script.get_current_head()


@pytest.mark.parametrize(("found", "may_upgrade", "action"), [
    (DatabaseSchema(HEAD, True), False, SchemaAction.USE),
    (DatabaseSchema(None, False), False, SchemaAction.CREATE),
    (DatabaseSchema(BEHIND, True), False, SchemaAction.REFUSE_BEHIND),
    (DatabaseSchema(BEHIND, True), True, SchemaAction.UPGRADE),
    (DatabaseSchema(REVISIONS[0], True), False, SchemaAction.REFUSE_BEHIND),
    (DatabaseSchema("9999", True), True, SchemaAction.REFUSE_UNKNOWN),
    (DatabaseSchema(None, True), True, SchemaAction.REFUSE_FOREIGN),
])
def test_what_opening_a_database_does(found: DatabaseSchema, may_upgrade: bool, action: SchemaAction) -> None:
    assert decide(found, REVISIONS, may_upgrade) is action


def test_a_read_command_refuses_a_database_one_revision_behind_and_leaves_it_so(tmp_path: Path, db_url: str) -> None:
    upgrade(db_url, BEHIND)
    config = bridge_toml(tmp_path, db_url)
    done = cli("experiments", "list", "--config", str(config))
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.splitlines()
    shown = make_url(db_url).render_as_string(hide_password=True)
    assert line.startswith(f"beat-bridge: error: database {shown} is at schema revision {BEHIND}, "
                           f"this beat-bridge needs {HEAD}: run `beat-bridge db upgrade --config {config}`"), line
    assert revision_of(db_url) == BEHIND


def test_db_upgrade_then_lets_the_command_run(tmp_path: Path, db_url: str) -> None:
    upgrade(db_url, BEHIND)
    config = bridge_toml(tmp_path, db_url)
    upgraded = cli("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0 and "schema is current" in upgraded.stdout, upgraded.stderr
    assert revision_of(db_url) == HEAD
    listed = cli("experiments", "list", "--config", str(config))
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", "")


def test_a_brand_new_database_is_created_on_first_use(tmp_path: Path, db_url: str) -> None:
    config = bridge_toml(tmp_path, db_url)
    sessions = open_database(config, db_url)
    sessions.kw["bind"].dispose()
    assert revision_of(db_url) == HEAD


def test_the_daemons_start_up_migrates_a_database_behind_where_other_commands_refuse(tmp_path: Path,
                                                                                    db_url: str) -> None:
    upgrade(db_url, BEHIND)
    config = bridge_toml(tmp_path, db_url)
    with pytest.raises(SchemaError, match=f"at schema revision {BEHIND}, this beat-bridge needs {HEAD}"):
        open_app(config)
    app = open_app(config, may_upgrade=True)  # `beat-bridge run`
    app.sessions.kw["bind"].dispose()
    assert revision_of(db_url) == HEAD


def test_a_newer_or_a_foreign_schema_is_refused_naming_it(tmp_path: Path, sqlite_url: str) -> None:
    config = bridge_toml(tmp_path, sqlite_url)
    engine = create_engine_for(sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE experiments (id INTEGER PRIMARY KEY)"))
    with pytest.raises(SchemaError, match="has tables but no Alembic revision"):
        open_database(config, sqlite_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
    engine.dispose()
    with pytest.raises(SchemaError, match=f"revision 9999, which this beat-bridge \\(at {HEAD}\\) does not know"):
        open_database(config, sqlite_url)
