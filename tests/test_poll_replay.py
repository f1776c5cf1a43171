"""The poller's decisions, without a cluster: recorded squeue/sacct answers replayed through the fake.

Each test submits a real experiment through the real submitter (the fake's
sbatch prints the array id), plays the elements' part where the scenario needs
it (result file, cache files), replays what Slurm said in that scenario on the
live cluster, and checks what poll_once and the cycle did with it.
"""

from __future__ import annotations

import pytest
from fakes import DATA, EMPTY, Answer, data_file
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
from sqlalchemy import event, select

from bridge.models import Result, StateHistory
from bridge.sbatch_scripts import spool as spool_files
from poller.loop import run_cycle


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def test_completed_first_seen_settles_both_splits_and_the_experiment(env):
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    answer(env, "completed", "squeue", sub)
    report = poll(env)
    assert sorted(event for _, event in report.events) == ["done", "done"]
    assert status_of(env, experiment) == "D"
    assert (report.squeue_calls, report.sacct_calls) == (1, 0)  # squeue knew both: no sacct


def test_a_split_first_seen_completed_is_settled_in_one_transaction(env):
    declare(env, {"a": block(slots=2)})
    sub = submit(env)
    element_done(env, sub, 0)  # only one element ended: its job is not over (no cache check)
    squeue = answer_for_one(env, sub)
    env.fake.then("squeue", squeue)
    engine = env.sessions.kw["bind"]
    begins, locks = [], []
    event.listen(engine, "begin", lambda conn: begins.append(1))
    event.listen(engine, "before_cursor_execute",
                 lambda conn, cur, stmt, *a: locks.append(1) if stmt.startswith("UPDATE scheduler_lock") else None)
    report = poll(env)
    assert report.events == [(sub.split_ids[0], "done")]
    # one read transaction for the poll's active splits, and one locked transaction for the split
    assert (len(begins), len(locks)) == (2, 1)
    (first, _) = splits(env)
    node = squeue.stdout.split("|")[4]  # NodeList of the recorded row
    assert (first.status.value, first.slurm_state, first.slurm_node) == ("C", "COMPLETED", node)
    assert first.start_time is not None and first.end_time is not None and first.start_date is not None


def answer_for_one(env, sub):
    """The recorded squeue of `completed`, cut to element 0 (element 1 still pending)."""
    full = recorded_stdout("completed", "squeue", sub)
    lines = [line for line in full.splitlines() if line.startswith(f"{sub.job_id}_0|")]
    return Answer("\n".join(
        lines + [f"{sub.job_id}_[1]|{sub.job_id}|cpu|PENDING||2026-12-01T13:13:29|N/A|N/A|0|{sub.tag}|"]
    ) + "\n")


def test_started_then_done_fires_each_callback_once(env):
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    answer(env, "running", "squeue", sub)
    assert sorted(e for _, e in poll(env).events) == ["started", "started"]
    assert statuses(env) == ["P", "P"] and status_of(env, experiment) == "R"
    answer(env, "running", "squeue", sub)
    assert poll(env).events == []  # the same state again: nothing owed
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    answer(env, "completed", "squeue", sub)
    assert sorted(e for _, e in poll(env).events) == ["done", "done"]
    with env.sessions() as session:
        sources = [h.source for h in session.scalars(select(StateHistory).where(StateHistory.entity == "job_splits"))]
    assert sources.count("on_split_started") == 2 and sources.count("on_split_done") == 2


def test_failed_with_exit_codes_fails_the_block_with_slurms_reason(env):
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    answer(env, "failed", "squeue", sub)
    report = poll(env)
    events = dict(report.events)
    assert events[sub.split_ids[0]] == "failed:failed"  # exit 3
    assert status_of(env, experiment) == "F"
    with env.sessions() as session:
        result = session.scalars(select(Result).where(Result.split_index == 0)).one()
    assert "exited with code 3" in result.system_error and result.status == 3


def _killed_by_signal_9(env, sub):
    """squeue's recorded FAILED row with raw status 9 (FAILED 0:9), as element 0."""
    squeue = [line for line in recorded_stdout("failed", "squeue", sub).splitlines() if "|9|" in line]
    return Answer(squeue[0].replace(f"{sub.job_id}_1|", f"{sub.job_id}_0|") + "\n")


def test_a_plain_kill_9_without_memory_evidence_is_not_out_of_memory(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    env.fake.then("squeue", _killed_by_signal_9(env, sub))  # no slurm-J_0.err: nothing from slurmstepd
    assert poll(env).events == [(sub.split_ids[0], "failed:failed")]
    with env.sessions() as session:
        error = session.scalars(select(Result)).one().system_error
    assert "signal 9" in error and "memory" not in error


def test_slurmstepds_memory_kill_line_in_the_elements_stderr_is_out_of_memory(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    spool = spool_files.array_spool_dir(env.config.spool_dir, sub.tag)
    spool.mkdir(parents=True, exist_ok=True)
    recorded = (DATA / "stderr" / "over_memory_kill.err").read_text().replace("{job}", str(sub.job_id))
    (spool / f"slurm-{sub.job_id}_0.err").write_text(recorded)
    env.fake.then("squeue", _killed_by_signal_9(env, sub))
    assert poll(env).events == [(sub.split_ids[0], "failed:out_of_memory")]


def test_timeout_from_sacct_once_squeue_forgot(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env, job=41)  # tests/data/sacct_mixed.txt: 41_3 TIMEOUT, 41_0 COMPLETED, ...
    env.fake.then("squeue", FORGOTTEN)
    text = data_file("sacct_mixed.txt").stdout.replace("41_3|", "41_X|").replace("41_0|", "41_Y|")
    env.fake.then("sacct", Answer(text.replace("41_X|", "41_0|")))
    report = poll(env)
    assert report.events == [(sub.split_ids[0], "failed:timed_out")]
    assert (report.squeue_calls, report.sacct_calls) == (1, 1)
    with env.sessions() as session:
        assert session.scalars(select(Result)).one().timed_out is True


def test_cancelled_by_the_bridge_ends_the_cancel(env):
    from bridge.helpers import cancel_experiment

    experiment = declare(env, {"a": block()})
    sub = submit(env)
    with env.sessions() as session:
        cancel_experiment(session, experiment)
    env.fake.then("scancel", EMPTY)
    answer(env, "running", "squeue", sub)  # the cycle's poll still sees them running
    with env.sessions() as session:
        report = run_cycle(session, env.backend)
    assert sorted(report.cancelled) == [f"{sub.job_id}_0", f"{sub.job_id}_1"]
    assert env.fake.count("scancel") == 1 and statuses(env) == ["K", "K"]
    answer(env, "running", "squeue_cancelled", sub, kind="squeue")
    assert sorted(e for _, e in poll(env).events) == ["cancelled", "cancelled"]
    assert status_of(env, experiment) == "P"  # a finished cancel goes back to pending


def test_cancelled_by_someone_else_fails_the_block(env):
    experiment = declare(env, {"a": block()})
    sub = submit(env)
    answer(env, "running", "squeue", sub)
    poll(env)
    answer(env, "running", "squeue_cancelled", sub, kind="squeue")
    assert sorted(e for _, e in poll(env).events) == ["cancelled", "cancelled"]
    assert status_of(env, experiment) == "F"
    with env.sessions() as session:
        errors = {r.system_error for r in session.scalars(select(Result))}
    assert any("cancelled on Slurm outside the bridge" in (e or "") for e in errors)


def test_never_started_elements_of_a_cancelled_array_are_cancelled_from_the_bare_row(env):
    from bridge.helpers import cancel_experiment

    experiment = declare(env, {"a": block()})
    sub = submit(env)
    with env.sessions() as session:
        cancel_experiment(session, experiment)
    env.fake.then("squeue", FORGOTTEN).then("scancel", EMPTY)
    # sacct after the cancel of a pending array: one row under the bare array id
    env.fake.then("sacct", Answer(f"{sub.job_id}|{sub.job_id}|{sub.tag}|cpu|CANCELLED by 0|0:0|None assigned|"
                                  "2026-12-01T13:13:37|None|2026-12-01T13:13:41|\n"))
    with env.sessions() as session:
        run_cycle(session, env.backend)
    env.fake.then("squeue", FORGOTTEN)
    env.fake.then("sacct", Answer(f"{sub.job_id}|{sub.job_id}|{sub.tag}|cpu|CANCELLED by 0|0:0|None assigned|"
                                  "2026-12-01T13:13:37|None|2026-12-01T13:13:41|\n"))
    poll(env)
    assert statuses(env) == [] and status_of(env, experiment) == "P"


def test_a_held_array_cancelled_before_it_started_reads_as_cancelled_from_squeues_range_row(env):
    from bridge.helpers import cancel_experiment

    experiment = declare(env, {"a": block()})
    sub = submit(env)
    with env.sessions() as session:
        cancel_experiment(session, experiment)
    answer(env, "pending", "squeue", sub)
    env.fake.then("scancel", EMPTY)
    with env.sessions() as session:
        run_cycle(session, env.backend)
    answer(env, "pending", "squeue_cancelled", sub, kind="squeue")
    report = poll(env)
    assert sorted(e for _, e in report.events) == ["cancelled", "cancelled"] and report.sacct_calls == 0
    assert status_of(env, experiment) == "P"


def test_completed_without_a_result_file_waits_then_fails(env):
    experiment = declare(env, {"a": block(slots=1)})
    sub = submit(env)
    for check in range(1, 4):  # cache_errors = 2 in the replay config
        answer(env, "completed", "squeue", sub)
        report = poll(env)
        if check <= 2:
            assert report.events == [] and splits(env)[0].cache_errors == check
    assert report.events == [(sub.split_ids[0], "failed:cache")] and status_of(env, experiment) == "F"


def _result_file(env, sub, index=0):
    return spool_files.result_file(spool_files.array_spool_dir(env.config.spool_dir, sub.tag), index)


def _system_error(env):
    with env.sessions() as session:
        return session.scalars(select(Result)).one().system_error


def test_completed_with_its_result_file_deleted_fails_naming_the_file(env):
    experiment = declare(env, {"a": block(slots=1)})
    sub = submit(env)
    element_done(env, sub, 0)
    _result_file(env, sub).unlink()  # the shared file system lost it, or someone cleaned the spool
    events = []
    for _ in range(3):  # cache_errors = 2 in the replay config: two checks of grace, then the failure
        answer(env, "completed", "squeue", sub)
        events.append(poll(env).events)
    assert events == [[], [], [(sub.split_ids[0], "failed:cache")]] and status_of(env, experiment) == "F"
    assert str(_result_file(env, sub)) in _system_error(env)


@pytest.mark.parametrize("text", ["{\"status\": 0, \"stdout\": \"tru", "\x00\xff garbage", "[0]", "null"])
def test_completed_with_a_corrupt_result_file_fails_at_once_naming_the_file(env, text):
    experiment = declare(env, {"a": block(slots=1)})
    sub = submit(env)
    element_done(env, sub, 0)
    _result_file(env, sub).write_text(text, errors="surrogateescape")
    answer(env, "completed", "squeue", sub)
    assert poll(env).events == [(sub.split_ids[0], "failed:result")] and status_of(env, experiment) == "F"
    assert str(_result_file(env, sub)) in _system_error(env)


@pytest.mark.parametrize("result, key", [({"status": "ok"}, "status"), ({"status": 0, "stdout": ["x"]}, "stdout"),
                                         ({"status": True}, "status"), ({"status": 0, "statistics": 3}, "statistics")])
@pytest.mark.parametrize("state", ["completed", "failed"])
def test_a_result_file_of_the_wrong_shape_fails_naming_the_file_and_key(env, result, key, state):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    element_done(env, sub, 0, result=result)
    line = next(line for line in recorded_stdout(state, "squeue", sub).splitlines()
                if line.startswith(f"{sub.job_id}_"))
    env.fake.then("squeue", Answer(line.replace(line.split("|")[0], f"{sub.job_id}_0", 1) + "\n"))
    ((split_id, event),) = poll(env).events
    assert (split_id, event.partition(":")[0]) == (sub.split_ids[0], "failed")
    error = _system_error(env)
    assert str(_result_file(env, sub)) in error and repr(key) in error, error


def test_completed_with_a_failed_result_is_a_failure(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    element_done(env, sub, 0, result={"status": 1, "user_error": "ZeroDivisionError", "statistics": {}})
    answer(env, "completed", "squeue", sub)
    assert poll(env).events == [(sub.split_ids[0], "failed:result")]


def test_an_incomplete_cache_on_the_last_split_is_not_done(env):
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    element_done(env, sub, 0, cache=False)  # a result, but no cache files (shared file system lag)
    answer(env, "completed", "squeue", sub)
    assert poll(env).events == [] and splits(env)[0].cache_errors == 1


def test_pending_elements_are_neither_missing_nor_settled(env):
    declare(env, {"a": block(slots=3, size=3)})
    sub = submit(env)
    answer(env, "pending", "squeue", sub)
    report = poll(env)
    assert (report.events, report.missing, report.sacct_calls) == ([], [], 0)


def test_a_failed_split_asks_the_cycle_to_scancel_its_running_sibling_once(env):
    experiment = declare(env, {"a": block(slots=2)})
    sub = submit(env)
    failed = [line for line in recorded_stdout("failed", "squeue", sub).splitlines()
              if line.startswith(f"{sub.job_id}_0|")]
    running = [line for line in recorded_stdout("running", "squeue", sub).splitlines()
               if line.startswith(f"{sub.job_id}_1|")]
    env.fake.then("squeue", Answer("\n".join(failed + running) + "\n")).then("scancel", EMPTY)
    with env.sessions() as session:
        report = run_cycle(session, env.backend)
    assert env.fake.count("scancel") == 1 and report.cancelled == [f"{sub.job_id}_1"]
    assert env.fake.of("scancel") == [("scancel", f"{sub.job_id}_1")]
    assert statuses(env) == ["F", "K"] and status_of(env, experiment) == "F"
