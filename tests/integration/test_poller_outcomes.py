"""What the poller makes of real Slurm outcomes: a user failure in a DAG, a cancel while running,
a plain SIGKILL, an outside scancel, each driven by the real BridgeLoop against the local cluster.
A memory kill and a TIMEOUT are in test_audit_workload.py, whose one mixed workload shares the TIMEOUT wait."""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge_env import block, make_env, queue_toml
from poller_env import (
    Arrays,
    assert_failed_once,
    blocks,
    finished,
    results_of,
    run_loop,
    sacct_elements,
    schedule,
    split_history,
    squeue_left,
    status,
    wait_for,
)

from bridge.helpers import cancel_experiment
from poller.poll import active_splits

QUEUES = (
    queue_toml("default")
    # elements wait on Slurm (BeginTime) for 10 minutes: a sibling block still pending there
    + queue_toml("later", extra='extra_directives = ["--begin=now+600"]')
)


def _from(name: str) -> dict:
    return {"in": {"block": name, "output": "out"}}


def test_a_failing_block_fails_the_experiment_cancels_its_dependent_and_scancels_its_sibling_splits(
        tmp_path, slurm_cluster, slurm):
    """`held`'s elements wait on Slurm (--begin) while `bad` fails: they must be scancelled, not left there.

    (Siblings of the same job cannot be held back on purpose: every split of a job
    runs the same algorithm with the same parameters, so fail_always fails them all.)
    """
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "failing", "author": "erin", "blocks": {
        "src": block("scale", slots=2, parameters={"factor": 7}),
        "bad": block("fail_always", slots=2, inputs=_from("src"),
                     parameters={"message": "boom from the failing block"}),
        "held": block("sleep_then_copy", queue="later", slots=2, inputs=_from("src"), parameters={"seconds": 1}),
        "after": block("square", slots=2, inputs=_from("bad")),
    }})
    arrays = Arrays()
    try:
        run_loop(env, finished(experiment_id), timeout=90, on_cycle=arrays)
    finally:  # a failure must not leave `held` waiting on the cluster for 10 minutes
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)

    with env.sessions() as session:
        named = blocks(session, experiment_id)
        assert status(env, experiment_id) == "F"
        assert {n: b.status.value for n, b in named.items()} == {"src": "C", "bad": "F", "held": "L", "after": "L"}
        assert named["after"].id not in arrays.by_block  # the dependent was never split nor submitted
        (bad_array,) = arrays.by_block[named["bad"].id]
        (held_array,) = arrays.by_block[named["held"].id]
        bad = wait_for("bad's 2 elements final in sacct", lambda: _final(
            sacct_elements(slurm, since, job_ids=[bad_array]), 2), timeout=30)
        assert {r.state for r in bad} == {"FAILED"}, bad
        results = results_of(session, named["bad"])
        assert [r.split_index for r in results] == [0, 1]
        assert all(r.status != 0 and "boom from the failing block" in (r.user_error or "") for r in results), \
            [(r.status, r.user_error, r.system_error) for r in results]
        # the pending sibling block: marked cancelling by the failure, scancelled, confirmed by Slurm
        # never started, so Slurm shows the array as one row under its bare id, not one per element
        held = wait_for("held's array CANCELLED in sacct", lambda: [
            r for r in sacct_elements(slurm, since, job_ids=[held_array], ranges=True, bare=True)
            if r.state == "CANCELLED"], timeout=30)
        assert all(r.node_list in ("", "None assigned") for r in held), held
        history = split_history(session)
        scancelled = [h for h in history.values()
                      if h[1:] == [("N", "K", "on_split_fail"), ("K", "L", "on_split_cancelled")]]
        assert len(scancelled) == 2, history
        assert results_of(session, named["held"]) == []  # cancelled on request: no failure recorded
    assert squeue_left(slurm, arrays.job_ids) == []


def _final(records, count):
    final = [r for r in records if r.state not in ("PENDING", "RUNNING", "COMPLETING") and r.end is not None]
    return records if len(final) == count else None


def test_cancel_while_running_scancels_the_elements_and_the_experiment_goes_back_to_pending(
        tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "napping", "author": "erin", "blocks": {
        "nap": block("sleep_then_copy", slots=2, size=4, parameters={"seconds": 60}),
    }})
    arrays = Arrays()
    try:
        _cancel_while_running(env, slurm, since, experiment_id, arrays)
    finally:  # never leave 60 s sleepers behind on a failure
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)


def _cancel_while_running(env, slurm, since, experiment_id: int, arrays: Arrays) -> None:
    run_loop(env, lambda s: blocks(s, experiment_id)["nap"].status.value == "P" and all(
        sp.status.value == "P" for sp in blocks(s, experiment_id)["nap"].job.splits), timeout=30, on_cycle=arrays)
    (array,) = arrays.job_ids
    assert len(squeue_left(slurm, [array])) == 2  # both elements sleeping on the nodes

    with env.sessions() as session:
        assert cancel_experiment(session, experiment_id)
    assert status(env, experiment_id) == "C"
    run_loop(env, lambda s: status(env, experiment_id) == "P", timeout=30, on_cycle=arrays)

    assert arrays.job_ids == [array]  # nothing submitted again
    assert squeue_left(slurm, [array]) == []
    records = wait_for("both elements CANCELLED in sacct", lambda: _final(
        sacct_elements(slurm, since, job_ids=[array]), 2), timeout=30)
    assert {r.state for r in records} == {"CANCELLED"}
    with env.sessions() as session:
        nap = blocks(session, experiment_id)["nap"]
        assert nap.status.value == "L" and nap.job is None
        assert [r for r in results_of(session, nap) if not r.cancelled] == []
        history = split_history(session)
        assert sorted(h[-3:] for h in history.values()) == [[
            ("N", "P", "on_split_started"), ("P", "K", "process_newly_cancelled_experiments"),
            ("K", "L", "on_split_cancelled")]] * 2, history


def test_an_element_killed_by_a_plain_sigkill_fails_without_being_called_out_of_memory(
        tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES)
    experiment_id = schedule(env, {"name": "shot", "author": "erin", "blocks": {
        "killed": block("kill_self", slots=1, size=2),
    }})
    run_loop(env, finished(experiment_id), timeout=60)
    assert_failed_once(env, experiment_id, "killed", ["FAILED", "signal 9", "0:9"], timed_out=False)
    with env.sessions() as session:
        (result,) = results_of(session, blocks(session, experiment_id)["killed"])
    assert "memory" not in result.system_error, result.system_error


def test_an_element_scancelled_outside_the_bridge_fails_its_block_and_says_so(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES)
    experiment_id = schedule(env, {"name": "meddled", "author": "erin", "blocks": {
        "nap": block("sleep_then_copy", slots=2, size=4, parameters={"seconds": 30}),
    }})
    arrays = Arrays()
    try:
        run_loop(env, lambda s: blocks(s, experiment_id)["nap"].status.value == "P", timeout=30, on_cycle=arrays)
        (array,) = arrays.job_ids
        slurm.run(["scancel", f"{array}_1"], timeout=30).check()  # an admin, not the bridge
        run_loop(env, finished(experiment_id), timeout=40, on_cycle=arrays)
        # the block fails at once, so the experiment is F while split 0 is still being scancelled
        run_loop(env, lambda s: not active_splits(s), timeout=30, on_cycle=arrays)
    finally:
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)
    assert status(env, experiment_id) == "F"
    with env.sessions() as session:
        nap = blocks(session, experiment_id)["nap"]
        assert nap.status.value == "F"
        (result,) = [r for r in results_of(session, nap) if r.split_index == 1]
        assert "cancelled on Slurm outside the bridge" in (result.system_error or ""), result.system_error
        steps = {tuple(h[-1][:2]) for h in split_history(session).values()}
        assert steps == {("P", "L"), ("K", "L")}, split_history(session)  # 1 by the admin, 0 then by us
    assert squeue_left(slurm, [array]) == []
