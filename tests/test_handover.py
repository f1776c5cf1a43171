"""A level hands over in one cycle: a successful result of an element Slurm still shows running ends its split,
what that made runnable is submitted, and only then is the element released (bridge.handover).

Replayed Slurm (tests/data/replay), the real submitter, poller and cycle; the
live counterpart is tests/integration/test_handover_live.py.
"""

from __future__ import annotations

import json

import pytest
from fakes import Answer
from replay_env import answer, block, declare, element_done, make_replay_env, poll, statuses, submit

from bridge import handover
from bridge.element_config import JobFacts
from bridge.sbatch_scripts import spool as spool_files
from poller.loop import run_cycle

UPSTREAM_JOB, DEPENDENT_JOB = 4242, 4343


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def two_levels(env) -> None:
    declare(env, {"a": block(slots=2),
                  "b": block(slots=1, inputs={"in": {"block": "a", "output": "out"}})})


def spool(env, tag: str):
    return spool_files.array_spool_dir(env.config.spool_dir, tag)


def header(env, tag: str) -> dict:
    return json.loads((spool(env, tag) / "manifest.jsonl").read_text().splitlines()[0])


def test_ended_while_running_the_dependent_is_submitted_then_the_elements_released(env):
    two_levels(env)
    sub = submit(env, UPSTREAM_JOB)
    assert header(env, sub.tag)["linger"] == handover.LINGER  # b depends on a: a's elements linger
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    answer(env, "running", "squeue", sub)  # Slurm still shows both running: they wait for their release
    env.fake.then("sbatch", Answer(f"{DEPENDENT_JOB}\n"))
    seen = frozenset({(sub.tag, 0), (sub.tag, 1)})
    with env.sessions() as session:
        report = run_cycle(session, env.backend, finished=seen)
    assert sorted(event for _, event in report.poll.events) == ["done", "done"]
    assert sorted(report.poll.ended) == sorted(seen)
    (dependent,) = report.submitted
    assert dependent.job_id == DEPENDENT_JOB and "linger" not in header(env, dependent.tag)  # b: a leaf
    releases = [spool_files.release_file(spool(env, sub.tag), index) for index in (0, 1)]
    manifest = spool(env, dependent.tag) / "manifest.jsonl"
    # released, and after b's manifest (written just before its sbatch)
    assert all(r.exists() and r.stat().st_mtime_ns >= manifest.stat().st_mtime_ns for r in releases)


def test_without_its_result_seen_a_running_element_is_only_started(env):
    two_levels(env)
    sub = submit(env, UPSTREAM_JOB)
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    answer(env, "running", "squeue", sub)
    report = poll(env)  # the daemon has not seen the result files: Slurm's word only
    assert sorted(e for _, e in report.events) == ["started", "started"] and report.ended == []
    assert statuses(env) == ["P", "P"]
    answer(env, "running", "squeue", sub)
    report = poll(env, frozenset({(sub.tag, 0)}))  # now it has, for element 0
    assert [e for _, e in report.events] == ["done"] and report.ended == [(sub.tag, 0)]


def test_a_failed_result_of_a_running_element_waits_for_slurms_verdict(env):
    two_levels(env)
    sub = submit(env, UPSTREAM_JOB)
    for index in (0, 1):
        element_done(env, sub, index, result={"status": 1, "user_error": "boom", "statistics": {}})
    seen = frozenset({(sub.tag, 0), (sub.tag, 1)})
    answer(env, "running", "squeue", sub)
    assert sorted(e for _, e in poll(env, seen).events) == ["started", "started"]
    answer(env, "running", "squeue", sub)
    report = poll(env, seen)
    assert (report.events, report.ended, statuses(env)) == ([], [], ["P", "P"])


def facts(hands_over: bool, nb_splits: int) -> JobFacts:
    return JobFacts(1, 1, "a", "exp", "{}", nb_splits, "alice", hands_over)


def test_only_jobs_with_dependents_and_few_splits_linger_while_the_daemon_watches_results():
    assert handover.linger_for(facts(True, 1)) == handover.LINGER
    assert handover.linger_for(facts(True, handover.MAX_ELEMENTS)) == handover.LINGER
    assert handover.linger_for(facts(True, handover.MAX_ELEMENTS + 1)) == 0
    assert handover.linger_for(facts(False, 1)) == 0
    limit = handover.WATCHED_AT_MOST
    assert handover.linger_for(facts(True, 4), active=limit - 4, elements=4) == handover.LINGER
    assert handover.linger_for(facts(True, 4), active=limit - 3, elements=4) == 0  # results no longer watched


def test_a_busy_cluster_submits_without_linger(env, monkeypatch):
    monkeypatch.setattr(handover, "WATCHED_AT_MOST", 1)  # two splits of a: more than the daemon would watch
    two_levels(env)
    sub = submit(env, UPSTREAM_JOB)
    assert "linger" not in header(env, sub.tag)


def test_a_release_that_cannot_be_written_is_skipped_not_raised(tmp_path):
    (tmp_path / "bb-x").mkdir()
    assert handover.release(tmp_path, [("bb-x", 0), ("bb-gone", 1), ("../bad", 2)]) == 1
    assert (tmp_path / "bb-x" / "split-0.release").exists()


@pytest.mark.parametrize("dependent, lingers", [(True, True), (False, False)])
def test_the_daemon_ends_from_their_result_only_elements_that_wait_for_their_release(env, dependent, lingers):
    from poller.early import ResultWatch

    blocks = {"a": block(slots=2)}
    if dependent:
        blocks["b"] = block(slots=1, inputs={"in": {"block": "a", "output": "out"}})
    declare(env, blocks)
    sub = submit(env, UPSTREAM_JOB)
    element_done(env, sub, 0)
    watch = ResultWatch(env.config.spool_dir)
    with env.sessions() as session:
        watch.refresh(session)
    # any other element ends at once after its result: its split waits for Slurm's word (its End included)
    assert watch.finished() == (frozenset({(sub.tag, 0)}) if lingers else frozenset())
