"""A queues.toml edit and sync between two arrays of one job: the job keeps its mapping, new jobs take the new.

Through the real submitter over the replay fake (tests/replay_env.py): the
scripts are really rendered, the database is real. The queue allows 2 slots
per author, so a job of 4 splits goes out as two arrays; between them the
admin moves the queue to another partition with other limits (forced: live
work uses it). The backend keeps the queues.toml it was started with, which
no longer says what the database says: the rows are the only source.
"""

from __future__ import annotations

import re

import pytest
from fakes import Answer
from replay_env import JOB, block, declare, make_replay_env, splits, submit, submit_all
from sqlalchemy import select

from bridge.config import load_config
from bridge.devcluster.sandbox import queue_toml
from bridge.models import Job, QueueVersion
from bridge.queues import SyncRefused, sync_queues

SETTINGS = ("partition", "mem", "time", "cpus-per-task")


def directives(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([a-z-]+)=?(.*)$", script, re.M))


def sync(env, queues: str, force: bool = False) -> None:
    (env.root / "queues.toml").write_text(queues)
    config = load_config(env.root / "bridge.toml")
    with env.sessions() as session:
        sync_queues(session, config.queues, force=force)


@pytest.fixture
def env(tmp_path):
    made = make_replay_env(tmp_path)
    sync(made, queue_toml("default", max_slots_per_user=2))  # nothing uses it yet
    return made


def test_an_edit_between_two_arrays_of_a_job_leaves_the_second_array_as_the_first(env):
    declare(env, {"a": block(slots=4, size=8)})
    first = submit(env)
    assert len(first.split_ids) == 2  # 2 slots per author: the job's other 2 splits wait
    before = directives(env.fake.scripts()[0])
    assert (before["partition"], before["mem"], before["time"], before["array"]) == ("cpu", "300M", "10", "0-1%2")

    moved = queue_toml("default", "long", memory_limit=600, time_limit=20, max_slots_per_user=8)
    with pytest.raises(SyncRefused):
        sync(env, moved)  # another partition for a queue live work uses
    sync(env, moved, force=True)
    declare(env, {"b": block(slots=2, size=6)}, name="later", author="bob")  # a new job after the edit
    env.fake.then("sbatch", Answer(f"{JOB + 1}\n"), Answer(f"{JOB + 2}\n"))
    submitted = submit_all(env)
    assert len(submitted) == 2

    scripts = {re.search(r"job=(\d+)", s).group(1): directives(s) for s in env.fake.scripts()[1:]}
    with env.sessions() as session:
        old_job, new_job = (str(j) for j in session.scalars(select(Job.id).order_by(Job.id)))
        versions = {v.version: v for v in session.scalars(select(QueueVersion))}
    second, fresh = scripts[old_job], scripts[new_job]
    assert {k: second[k] for k in SETTINGS} == {k: before[k] for k in SETTINGS}  # still cpu, 300M, 10 min
    assert second["array"] == "2-3%2"
    assert (fresh["partition"], fresh["mem"], fresh["time"], fresh["array"]) == ("long", "600M", "20", "0-1%8")

    by_job: dict[int, set] = {}
    for split in splits(env):
        by_job.setdefault(split.job_id, set()).add(split.mapping_version)
    (old_version,), (new_version,) = by_job[int(old_job)], by_job[int(new_job)]  # one version per job
    assert old_version != new_version and {old_version, new_version} <= set(versions)
    assert '"partition": "cpu"' in versions[old_version].settings
    assert '"partition": "long"' in versions[new_version].settings
