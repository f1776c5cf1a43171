"""Database fixtures for the scheduling suite: a migrated database with queues, a cache root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from bridge.db import create_session_factory
from bridge.scheduling import upsert_queue


@pytest.fixture
def factory(db_url: str) -> Iterator[Any]:
    """A session factory on a fresh, migrated database (SQLite or PostgreSQL)."""
    made = create_session_factory(db_url)
    yield made
    made.kw["bind"].dispose()


@pytest.fixture
def session(factory: Any) -> Iterator[Session]:
    """One session, with queues 'cpu' (2 slots per user) and 'big' (100), environment python-3.11."""
    with factory() as s:
        env = [("python", "3.11")]
        upsert_queue(s, name="cpu", partition="debug", memory_limit=1000, time_limit=10,
                     max_slots_per_user=2, environments=env)
        upsert_queue(s, name="big", partition="debug", memory_limit=1000, time_limit=10,
                     max_slots_per_user=100, environments=env)
        s.commit()
        yield s


@pytest.fixture
def cache_root(tmp_path: Path) -> Path:
    root = tmp_path / "cache"
    root.mkdir()
    return root

