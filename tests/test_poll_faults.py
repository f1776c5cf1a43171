"""The poller when Slurm misbehaves, without a cluster: failing, silent, lagging or garbled sources.

squeue and sacct answers recorded on the live cluster, or faults a real cluster
cannot produce on demand (a timeout, garbage, a truncated answer), replayed
through the fake (tests/fakes.py). Nothing may be lost, doubled, or decided on
a row that cannot be trusted.
"""

from __future__ import annotations

import logging

import pytest
from fakes import EMPTY, GARBAGE, SACCT_DOWN, TIMEOUT, Answer, truncated
from replay_env import (
    FORGOTTEN,
    answer,
    block,
    declare,
    element_done,
    make_replay_env,
    poll,
    recorded_stdout,
    splits,
    status_of,
    statuses,
    submit,
)

from bridge.errors import PollError
from poller.poll import poll_once


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def test_sacct_lag_rows_without_the_element_change_nothing(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    env.fake.then("squeue", FORGOTTEN)
    # recorded 3 s after the element ended: sacct shows it only as a bare-id `allocation` row
    answer(env, "sacct_lag", "sacct_lag", sub, kind="sacct")
    assert poll(env).events == [] and statuses(env) == ["N"]
    # a bare FAILED row (slurm-notes.md: an element's short-lived allocation row) is not trusted either
    env.fake.then("squeue", FORGOTTEN)
    env.fake.then("sacct", Answer(f"{sub.job_id}|{sub.job_id}|allocation||FAILED|0:0|n1|2026-12-01T13:13:46|"
                                  "2026-12-01T13:13:47|2026-12-01T13:13:49|\n"))
    assert poll(env).events == [] and statuses(env) == ["N"]


def test_an_unknown_state_is_logged_and_kept_active(env, caplog):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    row = recorded_stdout("running", "squeue", sub).splitlines()[1].replace("RUNNING", "WEIRD_NEW_STATE")
    env.fake.then("squeue", Answer(row + "\n"))
    with caplog.at_level(logging.WARNING):
        report = poll(env)
    assert report.events == [] and statuses(env) == ["N"]
    assert "unknown Slurm state 'WEIRD_NEW_STATE'" in caplog.text


def test_squeue_failing_with_sacct_answering_still_settles(env):
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    env.fake.then("squeue", TIMEOUT)
    answer(env, "completed", "sacct", sub)
    report = poll(env)
    assert sorted(e for _, e in report.events) == ["done", "done"] and status_of(env, experiment) == "D"


def test_both_failing_raises_poll_error_and_changes_nothing(env):
    declare(env, {"a": block()})
    submit(env)
    env.fake.then("squeue", Answer(returncode=1, stderr="squeue: error: Unable to contact slurm controller\n"))
    env.fake.then("sacct", SACCT_DOWN)
    with pytest.raises(PollError, match="squeue failed .* and sacct failed"):
        poll(env)
    assert statuses(env) == ["N", "N"]


def test_squeue_knowing_nothing_and_sacct_down_is_an_outage(env):
    declare(env, {"a": block()})
    submit(env)
    env.fake.then("squeue", FORGOTTEN).then("sacct", SACCT_DOWN)
    with pytest.raises(PollError, match="knows none of the 2 active elements"):
        poll(env)


def test_garbage_from_squeue_is_skipped_and_sacct_answers(env, caplog):
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    env.fake.then("squeue", GARBAGE)
    answer(env, "completed", "sacct", sub)
    with caplog.at_level(logging.WARNING):
        report = poll(env)
    assert "squeue output line" in caplog.text and report.sacct_calls == 1
    assert status_of(env, experiment) == "D"


def test_a_truncated_squeue_answer_loses_no_element(env):
    declare(env, {"a": block()})
    sub = submit(env)
    full = Answer(recorded_stdout("running", "squeue", sub))
    env.fake.then("squeue", truncated(full, 0.75))  # the second line cut mid-field
    answer(env, "running", "sacct", sub)
    report = poll(env)
    assert sorted(e for _, e in report.events) == ["started", "started"] and report.sacct_calls == 1


def test_a_terminal_row_without_end_is_not_settled_yet(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    env.fake.then("squeue", FORGOTTEN)
    row = f"{sub.job_id}_0|{sub.job_id}|{sub.tag}|cpu|FAILED|0:0|n1|2026-12-01T13:13:42|2026-12-01T13:13:42|Unknown|\n"
    env.fake.then("sacct", Answer(row))  # after a slurmdbd outage: FAILED 0:0 End=Unknown for 10-20 s
    assert poll(env).events == [] and statuses(env) == ["N"]
    assert splits(env)[0].slurm_state == "FAILED"  # recorded, not acted on


def test_an_element_unknown_to_both_past_the_grace_period_is_reported_missing(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    env.fake.then("squeue", FORGOTTEN).then("sacct", EMPTY)
    with env.sessions() as session:
        report = poll_once(session, env.backend, now=10**10)
    assert report.missing == [sub.split_ids[0]] and statuses(env) == ["N"]
