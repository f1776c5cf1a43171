"""Accounting snapshots without a cluster: made when a split settles, read from recorded sacct, bounded.

The recording tests/data/sacct_usage.txt is of array 2602 (elements 0-2) and of
array 2603 cancelled before it started; the fake's sbatch hands out 2602 here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fakes import DATA, EMPTY, SACCT_DOWN, Answer
from replay_env import answer, block, declare, element_done, make_replay_env, poll, status_of, submit
from sqlalchemy import select, update

from bridge.models import AccountingSnapshot, Job, JobSplit
from bridge.snapshots import GIVE_UP, refresh
from poller.loop import run_cycle

RECORDED = (DATA / "sacct_usage.txt").read_text()
JOB = 2602


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def settle_two(env) -> int:
    """An experiment of one block, two splits, both completed on the first poll; its id."""
    experiment = declare(env, {"a": block(slots=2)}, name="audited", author="bob")
    sub = submit(env, job=JOB)
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    answer(env, "completed", "squeue", sub)
    poll(env)
    assert status_of(env, experiment) == "D"
    return experiment


def snapshots(env) -> list[AccountingSnapshot]:
    with env.sessions() as session:
        rows = list(session.scalars(select(AccountingSnapshot).order_by(AccountingSnapshot.split_id)))
        session.expunge_all()
        return rows


def read(env, now: datetime, *answers: Answer):
    env.fake.then("sacct_usage", *answers)
    with env.sessions() as session:
        return refresh(session, env.backend.client, now)


def test_settling_adds_pending_snapshots_that_outlive_the_job_rows(env):
    experiment = settle_two(env)
    rows = snapshots(env)
    assert [(r.element_id, r.status, r.split_status, r.attempts) for r in rows] == [
        ("2602_0", "pending", "C", 0), ("2602_1", "pending", "C", 0)]
    assert {(r.experiment_id, r.experiment_name, r.author, r.block_name, r.queue_name, r.array_job_id)
            for r in rows} == {(experiment, "audited", "bob", "a", "default", JOB)}
    assert {r.algorithm for r in rows} == {block(slots=2)["algorithm"]} and {r.verdict for r in rows} == {"done"}
    assert len({r.mapping_version for r in rows}) == 1 and rows[0].mapping_version
    assert all(r.submission_tag and r.state == "COMPLETED" for r in rows)
    with env.sessions() as session:
        assert session.scalars(select(JobSplit)).all() == [] and session.scalars(select(Job)).all() == []
    assert env.fake.count("sacct_usage") == 0  # settling calls no Slurm


def test_a_round_reads_sacct_once_and_completes_what_it_settled(env):
    settle_two(env)
    first, submitted = snapshots(env)[0].first_seen, min(r.submit for r in snapshots(env))
    assert read(env, first + timedelta(seconds=1)).due == 0  # too soon: no call
    assert env.fake.count("sacct_usage") == 0
    report = read(env, first + timedelta(seconds=3), Answer(RECORDED))
    assert (report.due, report.sacct_calls, report.completed) == (2, 1, 2)
    (argv,) = env.fake.of("sacct_usage")
    assert argv[argv.index("-j") + 1] == "2602_0,2602_1" and "-X" not in argv
    assert datetime.fromisoformat(argv[argv.index("-S") + 1]) < submitted  # the window opens before the submit
    done = snapshots(env)[0]
    assert (done.status, done.attempts, done.alloc_cpus, done.req_mem_mb, done.max_rss_kb, done.total_cpu_s,
            done.elapsed_s, done.timelimit_min, done.account, done.qos, done.node_list, done.state) == (
        "complete", 1, 1, 100, 47324, 2.568, 3, 2, "root", "normal", "n1", "COMPLETED")
    assert read(env, first + timedelta(minutes=1)).due == 0  # nothing pending: no call
    assert env.fake.count("sacct_usage") == 1


def test_sacct_lag_keeps_a_snapshot_pending_then_unavailable_after_ten_minutes(env):
    settle_two(env)
    first = snapshots(env)[0].first_seen
    allocation, batch = RECORDED.splitlines()[:2]
    lagging = allocation + "\n" + batch.rsplit("|", 1)[0] + "|Unknown\n"  # batch step without End yet
    assert read(env, first + timedelta(seconds=3), Answer(lagging)).completed == 0
    assert read(env, first + timedelta(seconds=6), SACCT_DOWN).error is not None
    late = read(env, first + GIVE_UP + timedelta(seconds=1), EMPTY)
    assert (late.due, late.unavailable) == (2, 2)
    kept = snapshots(env)[0]
    assert (kept.status, kept.attempts, kept.alloc_cpus, kept.max_rss_kb) == ("unavailable", 3, 1, 47324)
    assert read(env, first + GIVE_UP + timedelta(minutes=1)).due == 0
    assert env.fake.count("sacct_usage") == 3


def test_never_started_element_is_asked_by_its_array_id(env):
    settle_two(env)
    with env.sessions() as session:
        session.execute(update(AccountingSnapshot).values(start=None, array_job_id=2603, element_id="2603_1"))
        session.commit()
    first = snapshots(env)[0].first_seen
    assert read(env, first + timedelta(seconds=3), Answer(RECORDED)).completed == 2
    (argv,) = env.fake.of("sacct_usage")
    assert argv[argv.index("-j") + 1] == "2603"
    assert snapshots(env)[0].state == "CANCELLED by 0" and snapshots(env)[0].max_rss_kb is None


def usage_lines(argv) -> Answer:
    """A settled allocation and batch row for each element id sacct was asked for (from the recording)."""
    allocation, batch = RECORDED.splitlines()[:2]
    ids = argv[list(argv).index("-j") + 1].split(",")
    return Answer("".join(f"{allocation.replace('2602_0', i)}\n{batch.replace('2602_0', i)}\n" for i in ids))


def test_at_most_one_sacct_call_per_500_elements(env):
    now = datetime(2026, 12, 1, 12, 0)
    with env.sessions() as session:
        session.add_all(AccountingSnapshot(
            split_id=i, split_status="C", experiment_id=1, experiment_name="big", author="bob", block_name="a",
            array_job_id=5000 + i // 1000, element_id=f"{5000 + i // 1000}_{i % 1000}", status="pending",
            first_seen=now, attempts=0, start=now, submit=now) for i in range(1201))
        session.commit()
    env.fake.always("sacct_usage", Answer(reply=usage_lines))
    report = read(env, now + timedelta(seconds=3))
    assert (report.due, report.sacct_calls, report.completed) == (1201, 3, 1201)
    sizes = [len(argv[argv.index("-j") + 1].split(",")) for argv in env.fake.of("sacct_usage")]
    assert sizes == [500, 500, 201]


def test_cycle_reads_snapshots_once_per_round_and_not_when_quiet(env):
    settle_two(env)
    env.fake.always("squeue", Answer())
    with env.sessions() as session:
        assert run_cycle(session, env.backend).accounting.due == 0  # settled just now: not due yet
        session.execute(update(AccountingSnapshot).values(first_seen=datetime(2026, 12, 1, 0, 0)))
        session.commit()
        env.fake.then("sacct_usage", Answer(RECORDED))
        assert run_cycle(session, env.backend).accounting.completed == 2
        assert run_cycle(session, env.backend).accounting.due == 0  # nothing pending: a quiet cycle
    assert env.fake.count("sacct_usage") == 1


def test_rounds_come_no_more_often_than_every_two_seconds_while_splits_keep_settling(env):
    settle_two(env)
    first = snapshots(env)[0].first_seen
    allocation, batch = RECORDED.splitlines()[:2]
    lagging = allocation + "\n" + batch.rsplit("|", 1)[0] + "|Unknown\n"
    read(env, first + timedelta(seconds=3), Answer(lagging))  # the round: both still pending
    with env.sessions() as session:  # a split settled long ago shows up only now (its first sight is old)
        session.add(AccountingSnapshot(split_id=99, split_status="F", experiment_id=1, experiment_name="x",
                                       author="bob", block_name="b", array_job_id=JOB, element_id="2602_2",
                                       status="pending", first_seen=first, attempts=0, start=first))
        session.commit()
    assert read(env, first + timedelta(seconds=4)).due == 0  # due, but the last round is 1 s old
    assert read(env, first + timedelta(seconds=5.5), Answer(RECORDED)).completed == 3
    assert env.fake.count("sacct_usage") == 2
