"""The Alembic migration creates exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from bridge.db import MIGRATIONS, create_engine_for, create_session_factory, upgrade
from bridge.models import Base


def test_migration_matches_models(db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine_for(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert diffs == []
    assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()  # the last of bridge/migrations


def test_upgrade_is_idempotent_and_lock_row_exists(db_url: str) -> None:
    factory = create_session_factory(db_url)
    upgrade(db_url)
    with factory() as session:
        assert session.execute(text("SELECT counter FROM scheduler_lock WHERE id = 1")).scalar() == 0
        assert "job_splits" in inspect(session.get_bind()).get_table_names()


def test_sqlite_pragmas(sqlite_url: str) -> None:
    factory = create_session_factory(sqlite_url)
    with factory() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_sqlite_never_reuses_split_ids(sqlite_url: str) -> None:
    factory = create_session_factory(sqlite_url)
    with factory() as session:
        sql = session.execute(text(
            "SELECT sql FROM sqlite_master WHERE name IN ('jobs', 'job_splits')")).scalars().all()
    assert all("AUTOINCREMENT" in statement for statement in sql) and len(sql) == 2


def test_concurrent_upgrades_both_succeed(db_url: str) -> None:
    import threading

    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(db_url)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []


def test_helpers_work_on_a_schema_made_with_create_all(tmp_path) -> None:
    from bridge import helpers
    from bridge.db import create_engine_for

    url = f"sqlite:///{tmp_path / 'plain.sqlite'}"
    engine = create_engine_for(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    factory = create_session_factory(url, create_schema=False)
    with factory() as session:
        assert helpers.split_new_jobs(session) == []  # nothing to split: no lock taken (poller.memory)
        assert helpers.cancel_experiment(session, 1) is False  # a helper that locks adds the missing row
        assert session.execute(text("SELECT counter FROM scheduler_lock")).scalar() == 1


SNAPSHOT = ("INSERT INTO accounting_snapshots (split_id, {extra}split_status, experiment_id, experiment_name, author, "
            "block_name, array_job_id, element_id, status, first_seen, attempts) "
            "VALUES (7, {value}'F', 1, 'e', 'alice', 'b', 4242, :element, 'pending', '2026-12-01 10:00:00', 0)")


def _snapshot(connection, element: str, attempt: int | None = None) -> None:
    extra, value = ("attempt, ", f"{attempt}, ") if attempt is not None else ("", "")
    connection.execute(text(SNAPSHOT.format(extra=extra, value=value)), {"element": element})


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    from bridge.db import alembic_config

    engine = create_engine_for(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def test_0008_makes_snapshots_unique_per_attempt_and_downgrade_keeps_the_latest(db_url: str) -> None:
    """0003's UNIQUE (split_id) is dropped by its name on each database; (split_id, attempt) replaces it."""
    from sqlalchemy.exc import IntegrityError

    upgrade(db_url, "0006")
    engine = create_engine_for(db_url)
    try:
        with engine.begin() as connection:
            _snapshot(connection, "4242_0")
        upgrade(db_url)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT attempt FROM accounting_snapshots")).scalar() == 1
            _snapshot(connection, "4300_0", attempt=2)  # the same split's next attempt
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _snapshot(connection, "4301_0", attempt=2)
        _downgrade(db_url, "0006")
        with engine.begin() as connection:
            assert connection.execute(text("SELECT element_id FROM accounting_snapshots")).scalars().all() == [
                "4300_0"]
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _snapshot(connection, "4301_0")  # one snapshot per split again
        upgrade(db_url)
    finally:
        engine.dispose()
