"""Fair share and back-pressure on the real cluster (AccountingStorageEnforce=associations,limits,qos).

An author mapped to their own account ([accounts] in bridge.toml) is charged
to it; a submit limit set through sacctmgr (an association's MaxSubmitJobs, a
QOS's MaxSubmitJobsPerUser) refuses arrays at sbatch, and the bridge sends
smaller ones and waits for room: every split runs, none fails, and sacct never
sees more of the account's elements submitted and unfinished than the limit.
`queues check` names an author's account slurmdbd does not know. Each test
makes its own account (and QOS) and removes them, with their jobs, after.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env, queue_toml
from poller_env import REPO, Arrays, finished, run_loop, schedule, status, wait_for
from sqlalchemy import func, select

from bridge.models import Result, StateHistory
from bridge.runner import Runner

# Association, QOS and partition changes reach every job on the cluster (slurmctld re-reads them).
pytestmark = pytest.mark.exclusive("changes associations, QOS and the debug partition's DenyAccounts")

LIMIT = 3


def _sacctmgr(slurm: Runner, *args: str) -> None:
    slurm.run(["sacctmgr", "-i", *args], timeout=30).check()


@pytest.fixture
def account(slurm) -> Iterator[str]:
    """A new account root is associated with, removed (with its jobs) after the test."""
    name = f"bbt{uuid.uuid4().hex[:8]}"
    _sacctmgr(slurm, "add", "account", name, "Description=backpressure test", "Organization=beat")
    _sacctmgr(slurm, "add", "user", "root", f"Account={name}")
    yield name
    slurm.run(["scancel", f"--account={name}"], timeout=30)
    wait_for(f"no job of account {name} left", lambda: not slurm.run(
        ["squeue", "-h", f"--account={name}", "-o", "%i"], timeout=30).stdout.strip(), timeout=30)
    slurm.run(["sacctmgr", "-i", "delete", "user", "root", "where", f"account={name}"], timeout=30)
    slurm.run(["sacctmgr", "-i", "delete", "account", name], timeout=30)


def _elements_of(slurm: Runner, account: str, since: datetime) -> list[list[str]]:
    """sacct's element rows of the account: [JobID, Account, State, Submit, End]."""
    argv = ["sacct", "-X", "-n", "-P", "-a", f"--accounts={account}", "-S", since.strftime("%Y-%m-%dT%H:%M:%S"),
            "-E", "now", "--format=JobID,Account,State,Submit,End"]
    rows = [line.split("|") for line in slurm.run(argv, timeout=30).check().stdout.splitlines() if line]
    return [r for r in rows if "_" in r[0] and "[" not in r[0]]


def _most_at_once(rows: list[list[str]]) -> int:
    """The most elements submitted and not yet ended at any one time (sacct's Submit and End)."""
    edges = sorted([(r[3], 1) for r in rows] + [(r[4], -1) for r in rows], key=lambda e: (e[0], e[1]))
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _run_limited(tmp_path, slurm_cluster, slurm, account: str, queues: str, accounts_toml: str, splits: int):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=queues, extra=accounts_toml)
    since = datetime.now() - timedelta(seconds=5)
    experiment_id = schedule(env, {"name": "crowded", "author": "alice", "blocks": {
        "nap": block("sleep_then_copy", queue="limited", slots=splits, size=splits, parameters={"seconds": 1})}})
    arrays = Arrays()
    run_loop(env, finished(experiment_id), timeout=120, on_cycle=arrays)
    assert status(env, experiment_id) == "D"
    with env.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == splits
        assert not session.scalars(select(StateHistory.reason).where(StateHistory.source == "on_split_fail")).all()
    rows = wait_for(f"{splits} elements of {account} ended in sacct", lambda: (
        lambda rows: rows if len(rows) == splits and all(r[4] not in ("", "Unknown") for r in rows) else None)(
        _elements_of(slurm, account, since)), timeout=30)
    return env, arrays, rows


def test_an_association_submit_limit_holds_splits_back_until_room_frees(tmp_path, slurm_cluster, slurm, account):
    _sacctmgr(slurm, "modify", "user", "root", "where", f"account={account}", "set", f"MaxSubmitJobs={LIMIT}")
    env, arrays, rows = _run_limited(
        tmp_path, slurm_cluster, slurm, account, queue_toml("limited"),
        f'[accounts.authors]\nalice = "{account}"\n', splits=8)
    assert {r[1] for r in rows} == {account}  # charged to the author's account, not the service user's
    assert {r[2] for r in rows} == {"COMPLETED"}
    assert _most_at_once(rows) <= LIMIT, rows
    assert len(arrays.job_ids) >= 8 // LIMIT + 1  # the job went out in smaller arrays
    assert env.backend.pressure.refusals > 0  # and sbatch did refuse some: the limit was really reached


def test_a_qos_submit_limit_is_back_pressure_too(tmp_path, slurm_cluster, slurm, account):
    qos = f"{account}q"
    _sacctmgr(slurm, "add", "qos", qos, "MaxSubmitJobsPerUser=2")
    try:
        _sacctmgr(slurm, "modify", "user", "root", "where", f"account={account}", "set", f"qos+={qos}")
        env, arrays, rows = _run_limited(
            tmp_path, slurm_cluster, slurm, account, queue_toml("limited", extra=f'qos = "{qos}"\n'),
            f'[accounts]\ndefault = "{account}"\n', splits=5)
        assert _most_at_once(rows) <= 2, rows
        assert env.backend.pressure.refusals > 0
    finally:
        slurm.run(["scancel", f"--qos={qos}"], timeout=30)
        time.sleep(1)
        slurm.run(["sacctmgr", "-i", "delete", "qos", qos], timeout=30)


def test_queues_check_names_an_authors_account_slurmdbd_does_not_know(tmp_path, slurm_cluster, slurm, account):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=queue_toml("default"),
                   extra=f'[accounts.authors]\nalice = "{account}"\nbob = "nosuch{account}"\n')
    done = subprocess.run([sys.executable, "-m", "bridge.cli", "queues", "check", "--config", str(env.config.path)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line for line in lines if "accounts.authors.bob" in line and "no such account in slurmdbd" in line], lines
    assert not [line for line in lines if "accounts.authors.alice" in line], lines  # alice's account is fine


def test_queues_check_names_a_qos_not_allowed_and_a_partition_denying_an_authors_account(
        tmp_path, slurm_cluster, slurm, account):
    """The live lint's Allow/Deny and association-QOS rules, on a QOS and an account made for this test only
    (the partition's DenyAccounts names only that account, and is cleared after)."""
    qos = f"{account}q"
    _sacctmgr(slurm, "add", "qos", qos)  # exists, but in no association of root
    slurm.run(["scontrol", "update", "PartitionName=debug", f"DenyAccounts={account}"], timeout=30).check()
    try:
        env = make_env(tmp_path, slurm_cluster, slurm,
                       queues=queue_toml("tight", "debug") + queue_toml("picky", extra=f'qos = "{qos}"\n'),
                       extra=f'[accounts.authors]\nalice = "{account}"\n')
        done = subprocess.run([sys.executable, "-m", "bridge.cli", "queues", "check", "--json",
                               "--config", str(env.config.path)], capture_output=True, text=True, timeout=120,
                              cwd=REPO)
    finally:
        slurm.run(["scontrol", "update", "PartitionName=debug", "DenyAccounts="], timeout=30)
        slurm.run(["sacctmgr", "-i", "delete", "qos", qos], timeout=30)
    assert done.returncode == 1, done.stderr
    found = json.loads(done.stdout)["findings"]
    rules = {(f["queue"], f["rule"], f["value"]) for f in found}
    assert ("picky", "qos_allowed", qos) in rules, found  # the queue's own QOS, in no association of root
    assert [f for f in found if f["queue"] == "picky" and f["rule"] == "qos_allowed" and f["value"] is None
            and f"with account {account!r} (accounts.authors.alice" in f["problem"]], found  # nor in alice's
    [denied] = [f for f in found if f["queue"] == "tight" and f["rule"] == "denyaccounts"]
    assert f"account {account!r} (accounts.authors.alice in bridge.toml)" in denied["problem"]
    assert "DenyAccounts of partition 'debug'" in denied["problem"]
