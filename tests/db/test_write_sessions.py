"""Write sessions (bridge.db.write_sessions) hold the write lock from their first read to their commit.

What the CLI's add / schedule / cancel / sync rely on while `beat-bridge run`
commits every cycle: a command that read, then writes after the daemon
committed, must neither fail ("database is locked" on SQLite) nor interleave
with the daemon's helper transaction (PostgreSQL).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from bridge.db import write_sessions
from bridge.history import locked
from bridge.models import Environment, Experiment
from bridge.scheduling import upsert_environment


def test_a_command_that_reads_then_writes_keeps_the_lock_while_the_daemon_commits(factory):
    read, order, errors = threading.Event(), [], []

    def daemon() -> None:  # one helper transaction of `run`, started while the command is between read and write
        try:
            read.wait(10)
            with factory() as session, locked(session):
                order.append("daemon")  # holding the lock: recorded here, not after commits (the threads race then)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = threading.Thread(target=daemon)
    thread.start()
    try:
        with write_sessions(factory)() as session:
            session.scalar(select(func.count(Experiment.id)))
            read.set()
            time.sleep(0.5)  # the daemon's turn: without the lock it commits here, under the command's feet
            upsert_environment(session, "R", "4.3")  # reads, then inserts: what `queues sync` does
            order.append("command")  # still holding the lock
            session.commit()
    finally:
        thread.join(30)
    assert errors == [] and not thread.is_alive(), errors
    assert order == ["command", "daemon"]  # the daemon waited for the command's lock
    with factory() as session:
        assert session.scalar(select(Environment.id).where(Environment.name == "R")) is not None
