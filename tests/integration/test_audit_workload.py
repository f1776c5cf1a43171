"""A mixed workload on the real cluster, audited: `beat-bridge audit` against sacct read here directly.

The suite's one TIMEOUT wait (Slurm's smallest limit is one minute, enforced
about every 30 s: ~90 s) is shared by three checks: a raw 10-element array
through the command seam reaches every terminal state sacct knows
(raw_array.py); the bridge's own element past its limit reaches on_split_fail
as a timeout; and, while it waits, a workload of completed, failed,
memory-killed and cancelled splits over two BEAT authors and two queues runs
beside it, whose audit must agree with sacct: core-hours within 1 %, element
counts and failure reasons exact.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import Counter

import pytest
import raw_array
from bridge_env import block, make_env, queue_toml
from poller_env import REPO, Arrays, assert_failed_once, blocks, run_loop, schedule, status
from sqlalchemy import select

from bridge.helpers import cancel_experiment
from bridge.models import Experiment, JobSplit
from bridge.models_audit import AccountingSnapshot
from bridge.runner import Runner

QUEUES = (
    queue_toml("default")
    # Slurm's smallest time limit, and less memory than `allocate` takes
    + queue_toml("tiny", memory_limit=100, time_limit=1, max_slots_per_user=2)
)
SACCT_FIELDS = "JobID,State,ExitCode,AllocCPUS,ElapsedRaw,Partition"


def _workload(env) -> dict[str, int]:
    """Five experiments: experiment name -> id. Authors erin (queue tiny) and frank (queue default)."""
    return {
        "sleepy": schedule(env, {"name": "sleepy", "author": "erin", "blocks": {
            "late": block("sleep_then_copy", queue="tiny", slots=1, size=2, parameters={"seconds": 400})}}),
        "greedy": schedule(env, {"name": "greedy", "author": "erin", "blocks": {
            "hog": block("allocate", queue="tiny", slots=1, size=2, parameters={"megabytes": 400, "seconds": 20})}}),
        "fine": schedule(env, {"name": "fine", "author": "frank", "blocks": {
            "ok": block("sleep_then_copy", slots=2, size=4, parameters={"seconds": 3})}}),
        "broken": schedule(env, {"name": "broken", "author": "frank", "blocks": {
            "boom": block("fail_always", slots=1, size=2)}}),
        "napping": schedule(env, {"name": "napping", "author": "frank", "blocks": {
            "nap": block("sleep_then_copy", slots=1, size=2, parameters={"seconds": 300})}}),
    }


class CancelNapWhenRunning:
    """on_cycle: cancel the `napping` experiment once its element runs (its split is processing)."""

    def __init__(self, experiment_id: int, arrays: Arrays) -> None:
        self.experiment_id, self.arrays, self.done = experiment_id, arrays, False

    def __call__(self, session, report) -> None:
        self.arrays(session, report)
        if self.done:
            return
        job = blocks(session, self.experiment_id)["nap"].job
        if job is not None and job.splits and all(s.status.value == "P" for s in job.splits):
            self.done = cancel_experiment(session, self.experiment_id)


def _settled_and_snapshotted(ids: dict[str, int]):
    def check(session) -> bool:
        experiments = {name: session.get(Experiment, i) for name, i in ids.items()}
        if any(e.status.value not in ("D", "F") for n, e in experiments.items() if n != "napping"):
            return False
        if blocks(session, ids["napping"])["nap"].status.value != "L":
            return False
        if session.scalars(select(JobSplit)).first() is not None:
            return False
        states = [s.status for s in session.scalars(select(AccountingSnapshot))]
        return len(states) == 6 and all(s == "complete" for s in states)
    return check


def _sacct(slurm: Runner, job_ids: list[int]) -> list[dict[str, str]]:
    """sacct's allocation row of every element, read here, not through the bridge."""
    done = slurm.run(["sacct", "-X", "-n", "-P", "-a", "-j", ",".join(map(str, job_ids)),
                      f"--format={SACCT_FIELDS}"], timeout=30).check()
    rows = [dict(zip(SACCT_FIELDS.split(","), line.split("|"))) for line in done.stdout.splitlines() if line]
    return [r for r in rows if "_" in r["JobID"] and "[" not in r["JobID"]]


def _expected_reason(row: dict[str, str], memory_killed: set[str]) -> str | None:
    state = row["State"].split()[0]
    if state == "COMPLETED":
        return None
    if state == "FAILED" and row["JobID"] in memory_killed:
        return "OUT_OF_MEMORY"
    if state == "FAILED":
        code, signal = row["ExitCode"].split(":")
        return f"FAILED signal {signal}" if signal != "0" else f"FAILED exit {code}"
    if state == "CANCELLED":
        return "CANCELLED by root"  # the tests run as root, as the bridge's service account here
    return state


def _audit(env, by: str, fmt: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bridge.cli", "audit", "--since", "1h", "--until", "now",
                           "--by", by, "--format", fmt, "--no-sacct", "--config", str(env.config.path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_mixed_workload_is_audited_as_sacct_accounts_it_and_a_time_limit_ends_in_timeout(
        tmp_path, slurm_cluster, slurm, slurm_client):
    """Through both Slurm clients: COMPLETED, FAILED, OUT_OF_MEMORY, CANCELLED and TIMEOUT reach the callbacks."""
    raw = raw_array.start(slurm)
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES, client=slurm_client)
    ids = _workload(env)
    arrays = Arrays()
    try:
        run_loop(env, _settled_and_snapshotted(ids), timeout=240,
                 on_cycle=CancelNapWhenRunning(ids["napping"], arrays))
    finally:
        slurm.run(["scancel", *map(str, arrays.job_ids)], timeout=30)
    with env.sessions() as session:
        snapshots = {s.element_id: s for s in session.scalars(select(AccountingSnapshot))}
    split_of = {s.block_name: s.split_id for s in snapshots.values()}
    assert_failed_once(env, ids["sleepy"], "late", ["TIMEOUT", "time limit"], timed_out=True,
                       split_id=split_of["late"])
    assert_failed_once(env, ids["greedy"], "hog", ["FAILED", "memory limit", "0:9"], timed_out=False,
                       split_id=split_of["hog"])
    assert (status(env, ids["fine"]), status(env, ids["broken"])) == ("D", "F")
    raw_array.check(slurm, raw)

    memory_killed = {e for e, s in snapshots.items() if s.block_name == "hog"}
    rows = _sacct(slurm, arrays.job_ids)
    assert sorted(r["JobID"] for r in rows) == sorted(snapshots)  # one snapshot per element sacct has

    def expected(key) -> dict[str, tuple[int, float, Counter]]:
        groups: dict[str, tuple[int, float, Counter]] = {}
        for r in rows:
            name = key(snapshots[r["JobID"]])
            count, core, reasons = groups.get(name, (0, 0.0, Counter()))
            reason = _expected_reason(r, memory_killed)
            groups[name] = (count + 1, core + int(r["AllocCPUS"]) * int(r["ElapsedRaw"]) / 3600,
                            reasons + Counter([reason] if reason else []))
        return groups

    for by, key in (("author", lambda s: s.author), ("queue", lambda s: s.queue_name)):
        report = json.loads(_audit(env, by, "json"))
        got = {g["key"]: g for g in report["groups"]}
        want = expected(key)
        assert sorted(got) == sorted(want) == (["erin", "frank"] if by == "author" else ["default", "tiny"])
        for name, (count, core, reasons) in want.items():
            assert got[name]["elements"] == count, (by, name, got[name])
            assert got[name]["core_hours"] == _within_one_percent(core), (by, name, got[name], core)
            assert got[name]["failures"] == dict(reasons), (by, name, got[name]["failures"], reasons)
    total = json.loads(_audit(env, "author", "json"))["total"]
    assert total["failures"] == {"CANCELLED by root": 1, "FAILED exit 1": 1, "OUT_OF_MEMORY": 1, "TIMEOUT": 1}
    assert (total["elements"], total["completed"], total["missing"]) == (6, 2, 0)
    table = list(csv.DictReader(io.StringIO(_audit(env, "queue", "csv"))))
    assert [r["key"] for r in table][-1] == "total" and table[-1]["elements"] == "6"


def _within_one_percent(value: float):
    return pytest.approx(value, rel=0.01, abs=1e-6)
