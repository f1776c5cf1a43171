"""Slurm's times are stored in UTC with the bridge's process and its runner's environment in Asia/Tokyo.

Submit, poll and settle a two-split array on the real cluster whose splits end
seconds apart (so the first split's End is stored while the array still runs),
and read the array back through the client's sacct: every Submit, Start and End
must be within a minute or two of UTC now, not nine hours away.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bridge_env import block, make_env
from poller_env import finished, run_loop, schedule, status
from sqlalchemy import select

from bridge.models import JobSplit, utcnow
from bridge.runner import LocalRunner

NEAR = timedelta(minutes=2)  # a local-time mistake in Tokyo is 9 hours


def near_utc_now(when: datetime | None) -> bool:
    return when is not None and abs(when - utcnow()) < NEAR


def test_times_from_slurm_are_stored_in_utc_with_the_bridge_and_its_runner_in_tokyo(
        tmp_path, slurm_cluster, tokyo_tz):
    runner = LocalRunner(env={**slurm_cluster.spec.env(), "TZ": tokyo_tz})
    env = make_env(tmp_path, slurm_cluster, runner)
    experiment_id = schedule(env, {"name": "tokyo", "author": "erin", "blocks": {
        "pair": block("sleep_by_value", slots=2, size=2, parameters={"seconds": 5})}})
    stored: dict[int, dict[str, datetime]] = {}  # split index -> the times seen stored (rows go when the job ends)
    arrays: set[int] = set()

    def watch(session, report) -> None:
        for split in session.scalars(select(JobSplit)):
            times = {"submit": split.submit_time, "start": split.start_time, "end": split.end_time}
            stored.setdefault(split.split_index, {}).update({k: v for k, v in times.items() if v is not None})
            if split.slurm_job_id:
                arrays.add(int(split.slurm_job_id))

    run_loop(env, finished(experiment_id), timeout=90, on_cycle=watch)
    assert status(env, experiment_id) == "D"
    assert set(stored[0]) == {"submit", "start", "end"} and {"submit", "start"} <= set(stored[1]), stored
    assert all(near_utc_now(when) for times in stored.values() for when in times.values()), (utcnow(), stored)
    (array,) = arrays
    records = [r for r in env.backend.client.accounting([array], utcnow() - timedelta(minutes=10)) if r.is_element]
    assert len(records) == 2 and all(near_utc_now(r.submit) and near_utc_now(r.start) and near_utc_now(r.end)
                                     for r in records), (utcnow(), records)
