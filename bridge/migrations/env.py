"""Alembic environment: runs on the connection handed in by bridge.db, or on the URL."""

from __future__ import annotations

from alembic import context

from bridge.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    """Run the migrations on bridge.db's connection (or on a fresh engine for the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from bridge.db import create_engine_for

    engine = create_engine_for(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
