"""Real faults on the shared dev cluster and PostgreSQL server, each undone whatever happens.

These disrupt everyone on the machine: only the fault tests use them (test_cluster_faults.py,
test_fault_campaign.py). Every fault is a context manager whose exit puts things back
and waits until they answer again, even when the test inside failed: a node is resumed
and seen idle, a daemon started and seen answering (the cluster's own start_daemon),
PostgreSQL restarted and accepting connections.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

PG_CLUSTER = ("15", "main")  # the machine's PostgreSQL cluster (pg_lsclusters)


@contextmanager
def node_down(cluster, node: str, reason: str = "bridge-fault-test") -> Iterator[None]:
    """`scontrol update state=down` on `node`; resumed and waited idle on exit (even on failure)."""
    cluster.runner.run(["scontrol", "update", f"nodename={node}", "state=down", f"reason={reason}"],
                       timeout=10).check()
    try:
        yield
    finally:
        # may say "Invalid node state specified" if the node already came back: wait_nodes_idle tells
        cluster.runner.run(["scontrol", "update", f"nodename={node}", "state=resume"], timeout=10)
        cluster.wait_nodes_idle(deadline=time.monotonic() + 60)


@contextmanager
def daemon_stopped(cluster, name: str) -> Iterator[None]:
    """One of the cluster's daemons (slurmctld, slurmdbd) stopped; started and answering again on exit."""
    assert cluster.stop_daemon(name), f"{name} was not running"
    try:
        yield
    finally:
        cluster.start_daemon(name, timeout=60)
        if name == "slurmctld":  # nodes re-register with the new slurmctld
            cluster.wait_nodes_idle(deadline=time.monotonic() + 60)
        if name == "slurmdbd":
            cluster.wait_sacct(deadline=time.monotonic() + 60)


def stop_start(cluster, name: str, seconds: float) -> None:
    """Stop a cluster daemon for `seconds`, then start it again."""
    with daemon_stopped(cluster, name):
        time.sleep(seconds)


def restart_postgres(timeout: float = 60.0) -> float:
    """`pg_ctlcluster 15 main restart`, then wait until it accepts connections; seconds it took."""
    started = time.monotonic()
    subprocess.run(["pg_ctlcluster", *PG_CLUSTER, "restart"], check=True, capture_output=True, timeout=timeout)
    deadline = started + timeout
    while subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], timeout=10).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL did not accept connections within {timeout:.0f} s of its restart")
        time.sleep(0.2)
    return time.monotonic() - started


def terminate_backends(url: str) -> int:
    """Terminate every connection to the database of `url` (from the server's `postgres` database); how many."""
    import psycopg

    url = make_url(url)
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                         dbname="postgres", autocommit=True, connect_timeout=5) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = %s AND pid <> pg_backend_pid()", (url.database,)).fetchall()
    return sum(1 for (done,) in rows if done)


@contextmanager
def database_closed(url: str) -> Iterator[int]:
    """The database of `url` alone refuses new connections and loses its open ones; reopened on exit.

    ALLOW_CONNECTIONS false (superusers too) on this test's own database, then its
    backends terminated; yields how many were. Other databases of the server are untouched.
    """
    import psycopg
    from psycopg import sql

    url = make_url(url)
    allow = sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}")
    name = sql.Identifier(url.database)
    with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                         dbname="postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(allow.format(name, sql.SQL("false")))
        try:
            yield terminate_backends(str(url))
        finally:
            admin.execute(allow.format(name, sql.SQL("true")))
