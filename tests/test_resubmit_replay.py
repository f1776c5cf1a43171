"""Failure-aware resubmission through the whole path, on the replay fake: poll, decide, resubmit, submit, settle.

Each test submits a real experiment through the real submitter, answers squeue
with the rows the live cluster gives for the failure (the recorded running and
completed rows' format; a memory kill on 22.05 without cgroups is FAILED with
signal 9 and slurmstepd's line in the element's stderr, tests/data/stderr/),
and checks what BEAT's callbacks saw: one on_split_started, one outcome.
The live cluster proves the memory kill and the node failure for real
(tests/integration/test_resubmission_live.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fakes import DATA, Answer, render
from replay_env import block, cycle, declare, element_done, make_replay_env, poll, splits, status_of, submit
from sqlalchemy import select

from bridge.audit import audit
from bridge.audit_query import load
from bridge.devcluster.sandbox import queue_toml
from bridge.explain import explain
from bridge.explain_read import gather
from bridge.explain_text import split_lines
from bridge.helpers import cancel_experiment
from bridge.models import AccountingSnapshot, Block, Queue, Result, StateHistory
from bridge.sbatch_scripts import spool as spool_files
from bridge.snapshots import refresh

QUEUES = (
    queue_toml("small", memory_limit=100, time_limit=1, extra=(
        'on_out_of_memory = { resubmit_to = "big", retries = 1 }\n'
        'on_timeout = { resubmit_to = "big" }\n'
        'on_node_fail = { retries = 1, exclude_node = true }\n'))
    + queue_toml("big", "long", memory_limit=600, time_limit=20)
    + queue_toml("plain", memory_limit=100)
)
START, END = "2026-12-01T13:19:33", "2026-12-01T13:19:40"
# tests/data/sacct_usage.txt: 2602_2 is a memory kill (FAILED 0:9, 1 CPU for 1 s), 2602_0 completed (1 CPU, 3 s)
RECORDED_USAGE = (DATA / "sacct_usage.txt").read_text()


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path, queues=QUEUES)


def squeue(sub, *elements: tuple[int, str, str, int]) -> Answer:
    """squeue rows of the array's elements: (index, state, node, raw exit status); End only once ended."""
    lines = []
    for index, state, node, status in elements:
        end = "2026-12-01T13:21:33" if state == "RUNNING" else END  # a running row's End is a forecast
        lines.append(f"{sub.job_id}_{index}|{sub.job_id + index}|cpu|{state}|{node}|{START}|{START}|{end}|"
                     f"{status}|{sub.tag}|")
    return Answer("\n".join(lines) + "\n")


def memory_killed(env, sub, index: int = 0) -> Answer:
    """Element `index` killed by OverMemoryKill: FAILED, signal 9, slurmstepd's lines in its --error file."""
    spool = spool_files.array_spool_dir(env.config.spool_dir, sub.tag)
    (spool / f"slurm-{sub.job_id}_{index}.err").write_text(
        render((DATA / "stderr" / "over_memory_kill.err").read_text(), sub.job_id))
    return squeue(sub, (index, "FAILED", "n1", 9))


def shown_split(env, experiment: int) -> str:
    """The split's line in `experiments show` (no Slurm asked)."""
    return shown_lines(env, experiment)[0]


def shown_lines(env, experiment: int) -> list[str]:
    """The split's lines in `experiments show` (no Slurm asked)."""
    with env.sessions() as session:
        shown = explain(gather(session, None, env.config.spool_dir, experiment), datetime.now())
    (block,) = shown["blocks"]
    (split,) = block["splits"]
    return split_lines(split)


def history(env) -> list[tuple[str | None, str, str]]:
    with env.sessions() as session:
        return [(h.from_status, h.to_status, h.source) for h in session.scalars(
            select(StateHistory).where(StateHistory.entity == "job_splits").order_by(StateHistory.id))]


def reasons(env, source: str) -> list[str]:
    with env.sessions() as session:
        return list(session.scalars(select(StateHistory.reason).where(StateHistory.source == source)
                                    .order_by(StateHistory.id)))


def test_a_memory_killed_split_runs_again_on_the_larger_queue_and_beat_sees_one_outcome(tmp_path, db_url):
    env = make_replay_env(tmp_path, queues=QUEUES, db_url=db_url)
    experiment = declare(env, {"a": block(slots=1, queue="small")})
    first = submit(env, 4242)
    env.fake.then("squeue", memory_killed(env, first))
    assert poll(env).events == [(first.split_ids[0], "resubmitted:out_of_memory")]
    (split,) = splits(env)
    with env.sessions() as session:
        big = session.scalar(select(Queue.id).where(Queue.name == "big"))
    assert (split.status.value, split.attempt, split.queue_id, split.slurm_element_id) == ("N", 2, big, None)
    assert status_of(env, experiment) == "R"

    second = submit(env, 4300)
    assert second.queue == "big" and second.split_ids == first.split_ids
    script = env.fake.scripts()[-1]
    assert "#SBATCH --partition=long" in script and "#SBATCH --mem=600" in script and "--exclude" not in script
    env.fake.then("squeue", squeue(second, (0, "RUNNING", "n2", 0)))
    assert poll(env).events == []  # the second start fires nothing: on_split_started came with the first
    shown = shown_split(env, experiment)
    assert shown.startswith("split 0: P (processing), element 4300_0 on n2, attempt 2 in queue big"), shown
    assert "out_of_memory" not in shown  # the first attempt's verdict is not the running attempt's
    element_done(env, second, 0)
    env.fake.then("squeue", squeue(second, (0, "COMPLETED", "n2", 0)))
    assert poll(env).events == [(first.split_ids[0], "done")]
    assert status_of(env, experiment) == "D"
    assert history(env) == [(None, "N", "split_new_jobs"), ("N", "P", "on_split_started"),
                            ("P", "N", "resubmit:out_of_memory"), ("N", "P", "attempt_started"),
                            ("P", "C", "on_split_done")]
    (why,) = reasons(env, "resubmit:out_of_memory")
    assert why.startswith(f"attempt 1 of split {split.id} (4242_0) failed: out_of_memory on node n1 in queue 'small'")
    assert "exceeded memory limit (642703360 > 104857600)" in why
    assert why.endswith("attempt 2: retry 1 of 1 to queue 'big'")
    assert reasons(env, "attempt_started") == ["attempt 2 on node n2 (4300_0)"]
    with env.sessions() as session:  # one Result: BEAT saw one outcome
        assert [r.status for r in session.scalars(select(Result))] == [0]
    every_attempt_is_accounted(env, experiment, split.id, first, second)


def every_attempt_is_accounted(env, experiment, split_id, first, second) -> None:
    """Both elements Slurm ran have a snapshot, read from sacct: the audit counts the memory kill as wasted."""
    rows = [line.replace("2602_2", f"{first.job_id}_0").replace("2602_0", f"{second.job_id}_0")
            for line in RECORDED_USAGE.splitlines() if line.startswith(("2602_2", "2602_0"))]
    env.fake.then("sacct_usage", Answer("\n".join(rows) + "\n"))
    with env.sessions() as session:
        latest = max(session.scalars(select(AccountingSnapshot.first_seen)))
        assert refresh(session, env.backend.client, latest + timedelta(seconds=3)).completed == 2
        snaps = list(session.scalars(select(AccountingSnapshot).order_by(AccountingSnapshot.attempt)))
        assert [(s.split_id, s.attempt, s.element_id, s.split_status, s.verdict, s.queue_name, s.state,
                 s.submission_tag) for s in snaps] == [
            (split_id, 1, f"{first.job_id}_0", "F", "failed:out_of_memory", "small", "FAILED", first.tag),
            (split_id, 2, f"{second.job_id}_0", "C", "done", "big", "COMPLETED", second.tag)]
        elements = load(session, datetime(2026, 1, 1), datetime(2100, 1, 1), experiment)
    figures = audit(elements, "queue", datetime(2026, 1, 1), datetime(2100, 1, 1))
    total = figures.total
    assert (total.elements, total.completed, total.failures) == (2, 1, {"OUT_OF_MEMORY": 1})
    assert (round(total.core_hours * 3600), round(total.wasted_core_hours * 3600)) == (4, 1)
    assert {g.key: (g.elements, round(g.wasted_core_hours * 3600)) for g in figures.groups} == {
        "small": (1, 1), "big": (1, 0)}
    shown = shown_lines(env, experiment)  # the job rows are gone: the latest attempt's snapshot is the split's line
    assert shown[0].startswith(f"split 0: C (completed), element {second.job_id}_0 on n1, attempt 2"), shown
    assert any(line.strip().startswith(f"attempt 1: element {first.job_id}_0 on n1, FAILED")
               and "failed:out_of_memory" in line for line in shown[1:]), shown


def test_a_node_failure_runs_again_on_the_same_queue_away_from_the_node_until_retries_are_used_up(env):
    experiment = declare(env, {"a": block(slots=1, queue="small")})
    first = submit(env, 4242)
    env.fake.then("squeue", squeue(first, (0, "RUNNING", "n1", 0)))
    assert [e for _, e in poll(env).events] == ["started"]
    env.fake.then("squeue", squeue(first, (0, "NODE_FAIL", "n1", 0)))
    assert [e for _, e in poll(env).events] == ["resubmitted:node_fail"]
    (split,) = splits(env)
    assert (split.attempt, split.queue_id, split.exclude_nodes) == (2, None, "n1")

    second = submit(env, 4300)
    script = env.fake.scripts()[-1]
    assert second.queue == "small" and "#SBATCH --exclude=n1" in script and "#SBATCH --partition=cpu" in script
    env.fake.then("squeue", squeue(second, (0, "NODE_FAIL", "n2", 0)))  # retries = 1: this one fails the split
    assert [e for _, e in poll(env).events] == ["failed:node_fail"]
    assert status_of(env, experiment) == "F"
    assert [h[2] for h in history(env)] == ["split_new_jobs", "on_split_started", "resubmit:node_fail",
                                            "attempt_started", "on_split_fail"]


def test_a_queue_without_a_policy_fails_a_memory_killed_split_at_once(env):
    experiment = declare(env, {"a": block(slots=1, queue="plain")})
    sub = submit(env, 4242)
    env.fake.then("squeue", memory_killed(env, sub))
    assert [e for _, e in poll(env).events] == ["failed:out_of_memory"]
    assert status_of(env, experiment) == "F" and env.fake.count("sbatch") == 1


def test_a_sibling_failing_in_the_same_poll_cancels_the_resubmitted_split_before_it_goes_out(env):
    experiment = declare(env, {"a": block(slots=2, queue="small")})
    sub = submit(env, 4242)
    memory_killed(env, sub, 0)
    env.fake.then("squeue", squeue(sub, (0, "FAILED", "n1", 9), (1, "FAILED", "n1", 3 << 8)))
    env.fake.always("scancel", Answer())
    report = cycle(env)
    assert sorted(e for _, e in report.poll.events) == ["failed:failed", "resubmitted:out_of_memory"]
    assert status_of(env, experiment) == "F" and env.fake.count("sbatch") == 1  # never sent again
    with env.sessions() as session:
        assert session.scalar(select(Block.status)).value == "F"
    assert history(env)[-1] == ("N", "L", "on_split_fail")  # the resubmitted split: cancelled with its block


def test_a_split_of_a_cancelled_experiment_is_not_resubmitted(env):
    experiment = declare(env, {"a": block(slots=1, queue="small")})
    sub = submit(env, 4242)
    env.fake.then("squeue", squeue(sub, (0, "RUNNING", "n1", 0)))
    poll(env)
    with env.sessions() as session:
        assert cancel_experiment(session, experiment)
    env.fake.then("squeue", memory_killed(env, sub))  # before the cycle has made the split cancelling
    assert [e for _, e in poll(env).events] == ["failed:out_of_memory"]
    assert splits(env) == [] and history(env)[-1] == ("P", "F", "on_split_fail")
    assert not reasons(env, "resubmit:out_of_memory") and env.fake.count("sbatch") == 1
    with env.sessions() as session:
        # the element's snapshot is recorded though the job was deleted in the same transaction
        # (bridge.snapshots.record_settled raised AttributeError on it before)
        assert session.scalars(select(AccountingSnapshot.verdict)).all() == ["failed:out_of_memory"]
