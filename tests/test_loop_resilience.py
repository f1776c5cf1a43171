"""The daemon outlives an unexpected error in a cycle (a bug, not a job's data): logged with its traceback,
the cycle counted failed, the loop backs off and the next cycle does the work. Through the replay fake."""

from __future__ import annotations

import logging

from fakes import Answer
from replay_env import answer, block, declare, element_done, make_replay_env, status_of, submit

from bridge.config import PollConfig
from bridge.models import Experiment
from poller.loop import BridgeLoop


def boom(argv):
    raise RuntimeError("an unexpected bug")


def _submitted_and_done(env):
    """A one-block experiment submitted through the replay fake, both its elements finished: (its id, the array)."""
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    return experiment, sub


def test_an_unexpected_error_fails_one_cycle_and_the_daemon_goes_on(tmp_path, caplog):
    env = make_replay_env(tmp_path)
    experiment, sub = _submitted_and_done(env)
    env.fake.then("squeue", Answer(raises=boom))
    answer(env, "completed", "squeue", sub)
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(0.1, 0.1))
    with caplog.at_level(logging.ERROR, logger="poller.loop"):
        loop.run(done=lambda session: session.get(Experiment, experiment).status.value == "D")
    assert status_of(env, experiment) == "D" and loop.failures == 1
    assert any(r.exc_info and "an unexpected bug" in str(r.exc_info[1]) for r in caplog.records)


def test_the_start_up_queue_comparison_logs_a_database_outage_instead_of_ending_the_daemon(tmp_path, caplog):
    """`run` compares queues.toml with the database once before its first cycle: with the database away (a real
    refused connection, nothing listens on port 1) that is a warning; the loop then rides out the outage."""
    from types import SimpleNamespace

    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from bridge.cli_run import warn_unsynced

    env = make_replay_env(tmp_path)
    away = sessionmaker(create_engine("postgresql+psycopg://beat@127.0.0.1:1/beat",
                                      connect_args={"connect_timeout": 2}))
    with caplog.at_level(logging.WARNING, logger="bridge.cli"):
        warn_unsynced(SimpleNamespace(sessions=away, config=env.config))
    [record] = [r for r in caplog.records if "could not compare queues.toml" in r.getMessage()]
    assert "database error" in record.getMessage() and "OperationalError" in record.getMessage()


def test_a_database_lost_when_a_cycles_session_closes_is_no_end_of_the_daemon(tmp_path, monkeypatch):
    """The rollback in close() meets a dropped connection (seen once in the fault campaign's pg_restart)."""
    from sqlalchemy.exc import OperationalError

    env = make_replay_env(tmp_path)
    experiment, sub = _submitted_and_done(env)
    answer(env, "completed", "squeue", sub)
    real_close, failures = env.sessions.class_.close, []

    def close(self):
        real_close(self)
        if len(failures) < 2:
            failures.append(1)
            raise OperationalError("ROLLBACK", {}, Exception("terminating connection due to administrator command"))

    monkeypatch.setattr(env.sessions.class_, "close", close)
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(0.1, 0.1))
    loop.run(done=lambda session: session.get(Experiment, experiment).status.value == "D")
    assert status_of(env, experiment) == "D" and len(failures) == 2
