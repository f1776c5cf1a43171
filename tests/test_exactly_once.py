"""Exactly once when sbatch's outcome is unknown: a claim is kept until the tag look-up answers for sure.

Issue 9, holes 1-3. An sbatch that timed out or whose SSH connection dropped may
have been accepted; a look-up where squeue failed and sacct (which lags squeue
by 1-3 s) found nothing proves nothing. Each test plays the case where Slurm
did take the array and only shows it later: releasing the claim then would
submit the same splits twice.
"""

from __future__ import annotations

import logging

import pytest
from fakes import EMPTY, LOST, SACCT_DOWN, SQUEUE_DOWN, TIMEOUT, Answer
from replay_env import JOB, block, claim_all, cycle, declare, make_replay_env, splits, status_of, submit_all
from sqlalchemy import delete

from bridge.config import PollConfig
from bridge.helpers import cancel_experiment
from bridge.models import JobSplit
from bridge.submit import reconcile_claims
from bridge.tags import new_tag
from poller.loop import BridgeLoop

LATE = Answer(f"{JOB}\n")  # squeue finally shows the array the lost sbatch created


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)



def claims(env):
    return [(s.submission_tag is not None, s.slurm_job_id) for s in splits(env)]


def test_a_last_sbatch_attempt_timing_out_keeps_the_claim_until_the_tag_is_found(env):
    declare(env, {"a": block()})
    env.fake.always("sbatch", TIMEOUT).always("find_squeue", EMPTY).always("find_sacct", EMPTY)
    assert submit_all(env) == []
    assert claims(env) == [(True, None), (True, None)]  # kept: Slurm may have taken it
    env.fake.always("find_squeue", LATE)
    sbatches = env.fake.count("sbatch")
    assert submit_all(env) == []  # the next cycle finds it: recorded, not submitted again
    assert env.fake.count("sbatch") == sbatches
    assert claims(env) == [(True, str(JOB)), (True, str(JOB))]


def test_an_sbatch_whose_ssh_connection_dropped_is_not_submitted_again(env):
    declare(env, {"a": block()})
    env.fake.then("sbatch", LOST).always("find_squeue", EMPTY).always("find_sacct", EMPTY)
    env.fake.always("sbatch", Answer(f"{JOB + 1}\n"))
    submit_all(env)
    assert env.fake.count("sbatch") == 1  # "may or may not have run": never a blind second sbatch
    env.fake.always("find_squeue", LATE)
    submit_all(env)
    assert env.fake.count("sbatch") == 1 and claims(env) == [(True, str(JOB)), (True, str(JOB))]



def test_squeue_failing_during_reconcile_while_sacct_lags_keeps_the_claim(env):
    declare(env, {"a": block()})
    tag = new_tag()
    claim_all(env, tag)
    env.fake.then("find_squeue", SQUEUE_DOWN).then("find_sacct", EMPTY)  # sacct has not caught up yet
    with env.sessions() as session:
        reconcile_claims(session, env.backend)
    assert claims(env) == [(True, None), (True, None)]
    env.fake.then("find_squeue", LATE)
    with env.sessions() as session:
        reconcile_claims(session, env.backend)
    assert claims(env) == [(True, str(JOB)), (True, str(JOB))]


def test_one_miss_by_both_sources_does_not_release_a_claim(env):
    declare(env, {"a": block()})
    tag = new_tag()
    claim_all(env, tag)
    env.fake.then("find_squeue", EMPTY).then("find_sacct", EMPTY)
    with env.sessions() as session:
        reconcile_claims(session, env.backend)
    assert claims(env) == [(True, None), (True, None)]



def test_a_claim_unknown_past_stuck_after_is_reported_once_and_shown_every_cycle(tmp_path, caplog):
    env = make_replay_env(tmp_path, extra="[claims]\nstuck_after = 0.0\n")
    declare(env, {"a": block()})
    env.fake.always("sbatch", TIMEOUT).always("find_squeue", SQUEUE_DOWN).always("find_sacct", SACCT_DOWN)
    with caplog.at_level(logging.ERROR, logger="bridge.claims"):
        first, second = cycle(env), cycle(env)
    (tag,) = {s.submission_tag for s in splits(env)}
    assert first.stuck == second.stuck == [tag]
    assert [r.getMessage() for r in caplog.records if "is stuck" in r.getMessage()] == [
        next(r.getMessage() for r in caplog.records if tag in r.getMessage())]  # logged once, naming the tag
    assert env.fake.count("sbatch") == 1


def test_cancelling_an_experiment_whose_claim_is_unknown_scancels_by_tag_then_ends_once_surely_missing(tmp_path):
    env = make_replay_env(tmp_path, extra="[claims]\nmisses = 2\ngrace = 0.0\n")
    experiment = declare(env, {"a": block()})
    env.fake.then("sbatch", TIMEOUT).always("find_squeue", SQUEUE_DOWN).always("find_sacct", EMPTY)
    env.fake.always("scancel", EMPTY)
    cycle(env)
    (tag,) = {s.submission_tag for s in splits(env)}
    with env.sessions() as session:
        cancel_experiment(session, experiment)
    report = cycle(env)  # still unknown: nothing can start behind our back
    assert report.cancelled_tags == [tag] and ("scancel", "--name", tag) in env.fake.of("scancel")
    assert status_of(env, experiment) == "C"  # cancelling until the claim is known
    env.fake.always("find_squeue", EMPTY)  # now both sources answer: not there, twice
    cycle(env), cycle(env)
    assert status_of(env, experiment) == "P" and env.fake.count("sbatch") == 1


def test_the_daemon_counts_stuck_submissions_for_runs_summary_and_warns(tmp_path, caplog):
    env = make_replay_env(tmp_path, extra="[claims]\nstuck_after = 0.0\n")
    declare(env, {"a": block()})
    env.fake.always("sbatch", TIMEOUT).always("find_squeue", SQUEUE_DOWN).always("find_sacct", SACCT_DOWN)
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(0.1, 0.1))
    with caplog.at_level(logging.WARNING, logger="poller.loop"):
        loop.run(once=True)
    assert loop.stuck == 1
    assert any("1 submissions stuck" in r.getMessage() for r in caplog.records)


def test_a_look_up_whose_claim_is_gone_is_forgotten_and_never_reported_stuck(tmp_path):
    env = make_replay_env(tmp_path, extra="[claims]\nstuck_after = 0.0\n")
    declare(env, {"a": block()})
    env.fake.always("sbatch", TIMEOUT).always("find_squeue", SQUEUE_DOWN).always("find_sacct", SACCT_DOWN)
    (old,) = cycle(env).stuck  # unknown, and stuck at once
    with env.sessions() as session:  # its splits vanish by another path (the block's job rows deleted)
        session.execute(delete(JobSplit))
        session.commit()
    assert old not in cycle(env).stuck  # (the job is split and submitted again under a new tag)
