"""PREEMPTED through the poller, on the replay fake: the element fails its split with Slurm's reason.

Why the fake: the dev cluster has no preemption configured (PreemptType is the
default preempt/none, no partition priority tiers, no QOS preemption), so it
cannot produce PREEMPTED on demand, and configuring it would change the cluster
every test shares. The rows are the recorded ones of running.json (both elements
RUNNING, then ended by SIGTERM: squeue's raw status 15, sacct's `0:0`) with the
state word changed to PREEMPTED: that is how preemption with PreemptMode=CANCEL
ends an element (SIGTERM, then SIGKILL after KillWait), and our arrays are
submitted with --no-requeue, so a preempted element is not queued again.
NODE_FAIL, which the cluster can produce, is tested for real
(tests/integration/test_cluster_faults.py).
"""

from __future__ import annotations

import pytest
from fakes import EMPTY, Answer
from replay_env import FORGOTTEN, answer, block, declare, make_replay_env, recorded_stdout, status_of, statuses, submit
from sqlalchemy import select

from bridge.models import Result, StateHistory
from poller.loop import run_cycle


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def _element(text: str, sub, index: int) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{sub.job_id}_{index}|")]


def preempted(text: str, sub, index: int, was: str) -> list[str]:
    """Element `index`'s recorded row(s), its state `was` read as PREEMPTED."""
    return [line.replace(f"|{was}|", "|PREEMPTED|") for line in _element(text, sub, index)]


def _cycle(env):
    with env.sessions() as session:
        return run_cycle(session, env.backend)


def _failure(env) -> tuple[str, list[tuple[str, str, str]]]:
    """The one Result's system error, and split 1's (first split's) transitions."""
    with env.sessions() as session:
        (result,) = session.scalars(select(Result)).all()
        history = session.scalars(select(StateHistory).where(StateHistory.entity == "job_splits")
                                  .order_by(StateHistory.id)).all()
        first = min(h.entity_id for h in history)
        return result.system_error or "", [(h.from_status, h.to_status, h.source) for h in history
                                            if h.entity_id == first]


def test_a_preempted_element_seen_by_squeue_fails_its_split_as_preempted_and_scancels_its_sibling(env):
    experiment = declare(env, {"a": block(slots=2)})
    sub = submit(env)
    answer(env, "running", "squeue", sub)
    assert sorted(e for _, e in _cycle(env).poll.events) == ["started", "started"]

    ended = recorded_stdout("running", "squeue_cancelled", sub)
    running = _element(recorded_stdout("running", "squeue", sub), sub, 1)
    env.fake.then("squeue", Answer("\n".join(preempted(ended, sub, 0, "CANCELLED") + running) + "\n"))
    env.fake.then("scancel", EMPTY)
    report = _cycle(env)

    assert report.poll.events == [(sub.split_ids[0], "failed:preempted")]
    assert env.fake.of("scancel") == [("scancel", f"{sub.job_id}_1")]  # the sibling, still running
    assert statuses(env) == ["F", "K"] and status_of(env, experiment) == "F"
    error, history = _failure(env)
    assert "Slurm state PREEMPTED: the element was preempted by another job (signal 15)" in error, error
    assert history == [(None, "N", "split_new_jobs"), ("N", "P", "on_split_started"), ("P", "F", "on_split_fail")]


def test_a_preempted_element_squeue_forgot_is_read_from_sacct_as_preempted(env):
    experiment = declare(env, {"a": block(slots=1)})
    sub = submit(env)
    answer(env, "running", "squeue", sub)
    assert _cycle(env).poll.events == [(sub.split_ids[0], "started")]

    env.fake.then("squeue", FORGOTTEN)  # past MinJobAge, or after a slurmctld restart
    rows = preempted(recorded_stdout("running", "sacct_cancelled", sub), sub, 0, "CANCELLED by 0")
    env.fake.then("sacct", Answer("\n".join(rows) + "\n"))
    report = _cycle(env)

    assert report.poll.events == [(sub.split_ids[0], "failed:preempted")]
    assert (report.poll.squeue_calls, report.poll.sacct_calls) == (1, 1)
    assert status_of(env, experiment) == "F" and statuses(env) == []  # a failed job's splits are deleted
    error, history = _failure(env)
    assert "Slurm state PREEMPTED: the element was preempted by another job" in error, error
    assert history[-1] == ("P", "F", "on_split_fail")
