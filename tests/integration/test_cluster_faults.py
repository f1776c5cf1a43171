"""Real cluster faults while elements run: a node going down (NODE_FAIL) and slurmctld stopped for 10 s.

Both disrupt the shared cluster (tests/integration/faults.py undoes them, on
failure too): the node is resumed and seen idle, slurmctld started and answering.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env
from faults import node_down, stop_start
from poller_env import (
    Arrays,
    blocks,
    finished,
    results_of,
    run_loop,
    sacct_elements,
    schedule,
    split_history,
    status,
    wait_for,
)
from sqlalchemy import select

from bridge.models import StateHistory

pytestmark = pytest.mark.exclusive("sets a node down (killing what runs there) and stops slurmctld")


def _from(name: str) -> dict:
    return {"in": {"block": name, "output": "out"}}


def _running_node(env, experiment_id: int, name: str):
    """The node the block's one split runs on, once the poller saw it start (else None)."""
    with env.sessions() as session:
        (split,) = blocks(session, experiment_id)[name].job.splits
        return split.slurm_node if split.status.value == "P" else None


def _block_status(env, experiment_id: int, name: str) -> str:
    with env.sessions() as session:
        return blocks(session, experiment_id)[name].status.value


def test_an_element_whose_node_goes_down_reaches_on_split_fail_as_a_node_failure(tmp_path, slurm_cluster, slurm):
    """Arrays go out with --no-requeue, so Slurm ends an element on a node set down as NODE_FAIL
    (seen on 22.05: at once, ExitCode 0:0) instead of queueing it again unseen."""
    env = make_env(tmp_path, slurm_cluster, slurm)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "node-lost", "author": "hana", "blocks": {
        "nap": block("sleep_then_copy", slots=1, size=2, parameters={"seconds": 60}),
    }})
    arrays = Arrays()
    try:
        run_loop(env, lambda s: _running_node(env, experiment_id, "nap"), timeout=40, on_cycle=arrays)
        node = _running_node(env, experiment_id, "nap")
        with node_down(slurm_cluster, node, reason="bridge-test-node-fail"):
            run_loop(env, finished(experiment_id), timeout=40, on_cycle=arrays)
    finally:  # never leave a 60 s sleeper behind on a failure
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)

    (array,) = arrays.job_ids
    (record,) = wait_for("the element final in sacct", lambda: [
        r for r in sacct_elements(slurm, since, job_ids=[array]) if r.end is not None], timeout=30)
    assert (record.state, record.node_list) == ("NODE_FAIL", node), record
    assert status(env, experiment_id) == "F"
    with env.sessions() as session:
        nap = blocks(session, experiment_id)["nap"]
        assert nap.status.value == "F"
        (result,) = results_of(session, nap)
        assert result.status != 0 and not result.timed_out
        assert "Slurm state NODE_FAIL: the element its node failed" in (result.system_error or ""), result.system_error
        (history,) = split_history(session).values()
        assert history == [(None, "N", "split_new_jobs"), ("N", "P", "on_split_started"), ("P", "F", "on_split_fail")]
        reasons = session.scalars(select(StateHistory.reason).where(
            StateHistory.entity == "blocks", StateHistory.entity_id == nap.id, StateHistory.to_status == "F")).all()
        assert len(reasons) == 1 and "NODE_FAIL" in (reasons[0] or ""), reasons


def test_slurmctld_stopped_for_10_s_while_elements_run_and_end_causes_no_false_failure(
        tmp_path, slurm_cluster, slurm):
    """Elements that end while slurmctld is down show RUNNING until ~13 s after it returns
    (slurm-notes.md); squeue fails meanwhile and sacct still answers from slurmdbd."""
    env = make_env(tmp_path, slurm_cluster, slurm)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "ctld-outage", "author": "hana", "blocks": {
        "a": block("sleep_then_copy", slots=3, size=6, parameters={"seconds": 4}),
        "b": block("total", slots=1, inputs=_from("a")),
    }})
    arrays, cycles, errors, loops = Arrays(), [], [], []

    def on_cycle(session, report) -> None:
        arrays(session, report)
        cycles.append((time.monotonic(), report.error))

    def loop() -> None:
        try:
            loops.append(run_loop(env, finished(experiment_id), timeout=120, on_cycle=on_cycle))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    wait_for("block a running", lambda: _block_status(env, experiment_id, "a") == "P", timeout=40)
    down = time.monotonic()
    stop_start(slurm_cluster, "slurmctld", 10)  # a's elements end (4 s) while it is down
    up = time.monotonic()
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors, errors
    loop = loops[0]
    # the bridge kept cycling meanwhile: how many cycles fit depends on how long Slurm's clients retry a
    # dead slurmctld (one squeue was seen blocking 12 s), so at least one, and none failed for good
    assert sum(1 for at, _ in cycles if down < at < up) >= 1, cycles
    assert status(env, experiment_id) == "D", loop.failures
    with env.sessions() as session:
        named = blocks(session, experiment_id)
        for name, count in {"a": 3, "b": 1}.items():
            results = results_of(session, named[name])
            assert [r.split_index or 0 for r in results] == list(range(count)), (name, results)
            assert all(r.status == 0 and not r.system_error for r in results), name
        history = split_history(session)
        assert len(history) == 4 and all(
            [(f, t) for f, t, _ in h] in ([(None, "N"), ("N", "P"), ("P", "C")], [(None, "N"), ("N", "C")])
            for h in history.values()), history
        array_of = {named[n].id: n for n in named}
    # one array per block, each element started once: by sacct, the cluster's own record
    assert Counter(array_of[b] for b, ids in arrays.by_block.items() for _ in ids) == Counter("ab"), arrays.by_block
    records = wait_for("4 element runs ended in sacct", lambda: (lambda rs: rs if len(rs) >= 4 else None)([
        r for r in sacct_elements(slurm, since, job_ids=arrays.job_ids, every_run=True) if r.end is not None]),
        timeout=30)
    assert Counter((r.array_job_id, r.array_task_id) for r in records) == Counter(
        {(j, i): 1 for b, (j,) in arrays.by_block.items() for i in range(3 if array_of[b] == "a" else 1)}), records
    assert {r.state for r in records} == {"COMPLETED"}, records
