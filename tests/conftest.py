"""Shared fixtures: the real parts (Slurm cluster, PostgreSQL, sshd) and how their absence is reported.

A missing part skips its tests on a developer's machine, but under
BRIDGE_REQUIRE_SLURM=1 (set by .ci/run) it fails them: CI must never pass by skipping.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import phases
import pytest
from required_parts import need  # noqa: F401  (re-exported: `from conftest import need` still works)

POSTGRES_ADMIN_URL = os.environ.get(
    "BRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# --- databases -------------------------------------------------------------------------


def _postgres_admin():
    """An autocommit psycopg connection to the admin database, or need()."""
    try:
        import psycopg
    except ImportError:
        need("PostgreSQL", "psycopg is not installed (pip install -e '.[dev]')")
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_ADMIN_URL)
    try:
        return psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username,
            password=url.password, dbname=url.database, autocommit=True, connect_timeout=5,
        )
    except psycopg.OperationalError as e:
        need("PostgreSQL", f"cannot connect to {url.render_as_string(hide_password=True)}: {e}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    admin = _postgres_admin()
    name = f"bb_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        try:
            admin.execute(drop)
        except psycopg.OperationalError:  # the test restarted the server (fault campaign): connect again
            admin.close()
            admin = _postgres_admin()
            admin.execute(drop)
        admin.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite:///{tmp_path / 'bridge.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.postgres)
        return request.getfixturevalue("postgres_url")
    return request.getfixturevalue("sqlite_url")


# --- the Slurm cluster -----------------------------------------------------------------


@pytest.fixture
def tokyo_tz() -> Iterator[str]:
    """This process in Asia/Tokyo (UTC+9, no daylight saving): local times differ from UTC by hours."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    try:
        yield "Asia/Tokyo"
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture(scope="session")
def slurm_cluster():
    """The running local cluster (beat-bridge cluster up); started here if BRIDGE_START_CLUSTER=1."""
    from bridge.devcluster.cluster import LocalCluster, load_spec
    from bridge.errors import BridgeError

    cluster = LocalCluster(load_spec(), say=lambda line: None)
    if not all(cluster.status().values()):
        if os.environ.get("BRIDGE_START_CLUSTER") != "1":
            need("the Slurm cluster", "not running; run `beat-bridge cluster up` or set BRIDGE_START_CLUSTER=1")
        try:
            cluster.up()
        except BridgeError as e:
            need("the Slurm cluster", f"`cluster up` failed: {e}")
    return cluster


@pytest.fixture(scope="session")
def slurm(slurm_cluster):
    """A LocalRunner whose environment points the Slurm clients at the local cluster."""
    return slurm_cluster.runner


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the cluster with `slurm`, so `-m 'not slurm'` runs the rest;
    then keep only the tests of --phase (tests/phases.py)."""
    for item in items:
        if {"slurm", "slurm_cluster"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slurm)
    phases.select_phase(config, items)


# --- the suite's phases (--phase=shared|exclusive|isolated, scripts/pytest_phases.sh); see tests/phases.py ---


def pytest_addoption(parser: pytest.Parser) -> None:
    phases.add_option(parser)


def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest) -> None:
    phases.check_fixture(fixturedef.argname, request)
