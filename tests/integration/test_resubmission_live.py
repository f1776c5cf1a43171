"""Failure-aware resubmission on the real cluster: a memory kill goes to a bigger queue, a lost node is avoided.

Both run the real loop against the dev cluster and end with the experiment done:
BEAT's callbacks saw one on_split_started and one on_split_done, never
on_split_fail, and the state history holds both attempts. The node test is the
only one here that disrupts the cluster: it sets the element's node down and
resumes it on the way out (tests/integration/faults.py), whatever happens.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env, queue_toml
from faults import node_down
from poller_env import (
    REPO,
    Arrays,
    blocks,
    finished,
    run_loop,
    sacct_elements,
    schedule,
    split_history,
    status,
    wait_for,
)
from sqlalchemy import select

from bridge.models import AccountingSnapshot, StateHistory

QUEUES = (
    queue_toml("small", memory_limit=100, extra='on_out_of_memory = { resubmit_to = "bigmem", retries = 1 }\n'
               'on_node_fail = { retries = 1, exclude_node = true }\n')
    + queue_toml("bigmem", "long", memory_limit=800)
)
STARTED_TWICE = [(None, "N", "split_new_jobs"), ("N", "P", "on_split_started"), ("P", "N", "resubmit:{}"),
                 ("N", "P", "attempt_started"), ("P", "C", "on_split_done")]


def _reasons(env, source: str) -> list[str]:
    with env.sessions() as session:
        return list(session.scalars(select(StateHistory.reason).where(StateHistory.source == source)
                                    .order_by(StateHistory.id)))


def _elements(slurm, since, arrays: Arrays, count: int):
    """The arrays' element rows once `count` of them have ended in sacct, in submission order."""
    return wait_for(f"{count} elements final in sacct", lambda: (lambda rows: rows if len(rows) == count else None)(
        [r for r in sacct_elements(slurm, since, job_ids=arrays.job_ids) if r.end is not None]), timeout=30)


def _audited(experiment_id: int):
    """Done, and both attempts' snapshots read from sacct."""
    def check(session) -> bool:
        states = session.scalars(select(AccountingSnapshot.status)).all()
        return finished(experiment_id)(session) and states == ["complete", "complete"]
    return check


def _audit_json(env, experiment_id: int) -> dict:
    done = subprocess.run([sys.executable, "-m", "bridge.cli", "audit", "--since", "1h", "--until", "now",
                           "--experiment", str(experiment_id), "--format", "json", "--no-sacct",
                           "--config", str(env.config.path)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_memory_killed_split_is_resubmitted_to_the_bigger_queue_and_completes(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "hungry", "author": "ida", "blocks": {
        "hog": block("allocate", queue="small", slots=1, size=2, parameters={"megabytes": 300, "seconds": 3})}})
    arrays = Arrays()
    try:
        run_loop(env, _audited(experiment_id), timeout=60, on_cycle=arrays)
    finally:
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)
    assert status(env, experiment_id) == "D"
    with env.sessions() as session:
        assert blocks(session, experiment_id)["hog"].status.value == "C"  # BEAT: block done
        (history,) = split_history(session).values()
    expected = [(a, b, c.format("out_of_memory")) for a, b, c in STARTED_TWICE]
    assert history == expected  # on_split_started once, no on_split_fail
    (why,) = _reasons(env, "resubmit:out_of_memory")
    assert "in queue 'small'" in why and "attempt 2: retry 1 of 1 to queue 'bigmem'" in why, why
    first, second = sorted(_elements(slurm, since, arrays, 2), key=lambda r: r.array_job_id)
    assert (first.state, first.partition, first.signal) == ("FAILED", "cpu", 9), first
    assert (second.state, second.partition) == ("COMPLETED", "long"), second
    total = _audit_json(env, experiment_id)["total"]  # both elements Slurm ran, the first one's cores wasted
    assert (total["elements"], total["completed"], total["failures"]) == (2, 1, {"OUT_OF_MEMORY": 1}), total
    assert 0 < total["wasted_core_hours"] < total["core_hours"], total


@pytest.mark.exclusive("sets a node of the shared cluster down")
def test_a_split_whose_node_goes_down_is_retried_on_the_other_node(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "unlucky", "author": "ida", "blocks": {
        "nap": block("sleep_then_copy", queue="small", slots=1, size=2, parameters={"seconds": 6})}})
    arrays = Arrays()

    def running_node(session):
        (split,) = blocks(session, experiment_id)["nap"].job.splits
        return split.slurm_node if split.status.value == "P" else None

    try:
        run_loop(env, running_node, timeout=30, on_cycle=arrays)
        with env.sessions() as session:
            lost = running_node(session)
        with node_down(slurm_cluster, lost, reason="bridge-test-resubmit"):
            run_loop(env, finished(experiment_id), timeout=40, on_cycle=arrays)
    finally:
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)
    assert status(env, experiment_id) == "D"
    with env.sessions() as session:
        (history,) = split_history(session).values()
    assert history == [(a, b, c.format("node_fail")) for a, b, c in STARTED_TWICE]
    (why,) = _reasons(env, "resubmit:node_fail")
    assert f"node_fail on node {lost}" in why and why.endswith(f"excluding {lost}"), why
    first, second = sorted(_elements(slurm, since, arrays, 2), key=lambda r: r.array_job_id)
    assert (first.state, first.node_list) == ("NODE_FAIL", lost), first
    assert second.state == "COMPLETED" and second.node_list != lost, second
