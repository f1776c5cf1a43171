"""A Slurm state missing from poller.states' table: kept active, never guessed final, and surfaced.

Seen first, it is logged once; still there after a bounded time, it is reported
once as an error and counted in every poll's report (what `run` shows) until it
changes. Driven through the replay fake, the clock given to poll_once.
"""

from __future__ import annotations

import logging

import pytest
from fakes import Answer
from replay_env import block, declare, make_replay_env, recorded_stdout, splits, submit

T0 = 1_800_000_000.0


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def weird_row(sub, state="WEIRD_NEW_STATE"):
    return Answer(recorded_stdout("running", "squeue", sub).splitlines()[1].replace("RUNNING", state) + "\n")


def test_an_unknown_state_past_the_bound_is_reported_once_and_counted_while_it_lasts(env, caplog):
    from poller.poll import poll_once
    from poller.unknown import UnknownStates

    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    (split,) = splits(env)
    watch = UnknownStates(bound=300.0)
    env.fake.always("squeue", weird_row(sub))
    reports = []
    with caplog.at_level(logging.DEBUG):
        for offset in (0.0, 60.0, 299.0, 301.0, 400.0, 4000.0):
            with env.sessions() as session:
                reports.append(poll_once(session, env.backend, now=T0 + offset, watch=watch))
    assert [r.unknown for r in reports] == [[]] * 3 + [[(split.id, "WEIRD_NEW_STATE")]] * 3
    assert all(r.events == [] for r in reports)
    (row,) = splits(env)
    assert (row.status.value, row.slurm_state) == ("N", "WEIRD_NEW_STATE")  # still active, never guessed final
    about = [r for r in caplog.records if "WEIRD_NEW_STATE" in r.getMessage()]
    assert [r.levelno for r in about if r.levelno >= logging.WARNING] == [logging.WARNING, logging.ERROR]


def test_a_known_state_again_clears_it_and_a_new_unknown_state_starts_its_own_clock(env):
    from poller.poll import poll_once
    from poller.unknown import UnknownStates

    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    watch = UnknownStates(bound=300.0)

    def poll_at(offset, answer):
        env.fake.then("squeue", answer)
        with env.sessions() as session:
            return poll_once(session, env.backend, now=T0 + offset, watch=watch).unknown

    assert poll_at(0, weird_row(sub)) == []
    assert poll_at(200, Answer(recorded_stdout("pending", "squeue", sub))) == []  # known again (pending)
    assert poll_at(400, weird_row(sub)) == []  # its clock starts again
    assert poll_at(650, weird_row(sub, "STRANGER")) == []  # another unknown state: a new clock
    assert poll_at(1000, weird_row(sub, "STRANGER")) != []


def test_the_daemon_remembers_it_across_cycles_and_counts_it_for_runs_summary(env):
    from bridge.config import PollConfig
    from poller.loop import BridgeLoop

    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    env.fake.always("squeue", weird_row(sub))
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(min_interval=0.01, max_interval=0.01))
    loop.unknown.bound = 0.0  # overdue from the second sight on
    loop.run(once=True)
    assert loop.unknown_states == 0
    loop.run(once=True)
    assert loop.unknown_states == 1 and [s.status.value for s in splits(env)] == ["N"]
