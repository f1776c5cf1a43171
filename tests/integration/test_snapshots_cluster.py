"""Accounting snapshots on the real cluster: a finished experiment's elements, read back from sacct.

The real BridgeLoop runs a two-split experiment to the end (its job and split
rows are then deleted), then cycles until the snapshots are complete; their
figures must equal what sacct itself prints for those elements, read here
with a command and a parse of the test's own.
"""

from __future__ import annotations

from datetime import timedelta

from bridge_env import block, make_env
from poller_env import finished, run_loop, schedule
from sqlalchemy import select

from bridge.models import AccountingSnapshot, JobSplit
from bridge.slurm_client import utc_naive_now


def _complete(session) -> bool:
    rows = session.scalars(select(AccountingSnapshot)).all()
    return len(rows) == 2 and all(r.status == "complete" for r in rows)


def _sacct(runner, since, element_ids) -> dict[str, dict[str, str]]:
    """sacct's own rows (allocation and steps) of the elements: JobID -> fields."""
    fields = ["JobID", "AllocCPUS", "ElapsedRaw", "MaxRSS", "State", "TotalCPU"]
    argv = ["sacct", "--parsable2", "--noheader", "--format=" + ",".join(fields),
            "-S", since.strftime("%Y-%m-%dT%H:%M:%S"), "-E", "now", "-j", ",".join(element_ids)]
    lines = runner.run(argv, timeout=30).check().stdout.splitlines()
    return {values[0]: dict(zip(fields, values)) for values in (line.split("|") for line in lines)}


def _kib(max_rss: str) -> int:
    """sacct's MaxRSS in KiB: it prints the largest unit that divides the value exactly (61440K as 60M)."""
    factor = {"K": 1, "M": 1024, "G": 1024 ** 2}.get(max_rss[-1:])
    return int(max_rss[:-1]) * factor if factor else int(max_rss)


def test_snapshots_outlive_the_job_rows_and_equal_sacct(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm)
    since = utc_naive_now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "audited", "author": "ann", "blocks": {
        # 40 MB held 1.5 s: sacct samples each second (JobAcctGatherFrequency=1); a sub-second element
        # has no MaxRSS at all in sacct, ever (seen on 22.05), so a snapshot cannot wait for one
        "src": block("allocate", slots=2, size=4, parameters={"megabytes": 40, "seconds": 1.5})}})
    run_loop(env, finished(experiment_id), timeout=60)
    loop = run_loop(env, _complete, timeout=60)  # sacct lags squeue: a few more cycles

    with env.sessions() as session:
        assert session.scalars(select(JobSplit)).all() == []  # the block ended: its rows are gone
        rows = session.scalars(select(AccountingSnapshot).order_by(AccountingSnapshot.element_id)).all()
        assert [(r.experiment_id, r.experiment_name, r.author, r.block_name, r.queue_name, r.split_status)
                for r in rows] == [(experiment_id, "audited", "ann", "src", "default", "C")] * 2
        sacct = _sacct(slurm, since, [r.element_id for r in rows])
        for row in rows:
            allocation, batch = sacct[row.element_id], sacct[f"{row.element_id}.batch"]
            assert row.state == allocation["State"] == "COMPLETED"
            assert row.alloc_cpus == int(allocation["AllocCPUS"]) >= 1
            assert row.elapsed_s == int(allocation["ElapsedRaw"])
            assert row.max_rss_kb == _kib(batch["MaxRSS"]) > 40 * 1024  # the batch step's
            assert row.end is not None and row.start is not None and row.submit <= row.start <= row.end
            assert row.attempts >= 1 and row.timelimit_min is not None and row.account
    assert loop.cycles >= 1
