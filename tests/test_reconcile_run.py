"""A reconcile run over a real database and the replay fake: failed calls, the lost split queued again, orphans.

Slurm's answers are written in squeue's and sacct's own formats; a failing
squeue or sacct is a fault the real cluster cannot produce on demand. The
real-cluster test is tests/integration/test_reconcile_cluster.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fakes import EMPTY, SACCT_DOWN, SQUEUE_DOWN, Answer
from replay_env import FORGOTTEN, JOB, QUEUES, block, declare, make_replay_env, splits, submit
from sqlalchemy import select

from bridge.cli import main
from bridge.cli_reconcile import render
from bridge.devcluster.sandbox import write_config
from bridge.models import ReconcileMiss, StateHistory, utcnow
from bridge.reconcile_run import apply, check
from bridge.tags import new_tag, parse_tag

EXTRA = 'deployment = "prod"\n[reconcile]\nmisses = 2\ngrace = 10.0\n'


@pytest.fixture
def env(tmp_path):
    """A bridge over the fake; look-ups by id (squeue -j, sacct -j) find nothing unless a test says otherwise."""
    env = make_replay_env(tmp_path, extra=EXTRA)
    env.fake.always("squeue", FORGOTTEN).always("sacct", EMPTY)
    return env


def squeue_line(array: str, state: str, name: str) -> str:
    """One line of `squeue -t all --me -O ...` (bridge.slurm.SQUEUE_FIELDS)."""
    return f"{array}|{array.split('_')[0]}|cpu|{state}||2026-12-01T13:19:38|N/A|N/A|0|{name}|\n"


def reconcile(env, now=None, slurm_jobs: str | None = "", accounted: str = "", do_apply: bool = False):
    """One run: the listing and sacct's window answer as given (slurm_jobs None: the test queued it)."""
    if slurm_jobs is not None:
        env.fake.then("squeue", Answer(slurm_jobs))
    env.fake.then("sacct", Answer(accounted))
    with env.sessions() as session:
        report = check(session, env.backend.client, env.config, now=now)
        if do_apply:
            apply(session, env.backend.client, report)
    return report


FAULTS = {  # which call fails: (squeue answers, sacct answers), in call order
    "squeue": ([SQUEUE_DOWN], []),
    "sacct": ([EMPTY], [SACCT_DOWN]),
    "sacct -j": ([EMPTY, FORGOTTEN], [EMPTY, SACCT_DOWN]),  # the listings missed it; the look-up by id failed
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_failed_squeue_or_sacct_is_an_error_never_lost_nor_clean(env, fault):
    declare(env, {"a": block(slots=1)})
    submit(env)  # array JOB, which the fake Slurm below never lists
    now = utcnow()
    assert [d.split_id for d in reconcile(env, now).watching] == [splits(env)[0].id]  # miss 1 of 2
    squeue, sacct = FAULTS[fault]
    env.fake.then("squeue", *squeue).then("sacct", *sacct)
    with env.sessions() as session:
        report = check(session, env.backend.client, env.config, now=now + timedelta(seconds=30))
        assert session.scalars(select(ReconcileMiss)).all() == []  # the run of misses starts again
    assert report.error is not None and fault in report.error and "nothing was judged" in report.error
    assert not report.clean and report.divergences == [] and report.to_dict()["clean"] is False
    assert env.fake.count("sacct") == 2 + len(sacct)  # the first run: window, by id; squeue failed: no sacct


def test_an_array_the_listings_miss_but_squeue_knows_by_id_is_not_missed(env):
    """The listings are the running user's jobs: run by another user, they would miss the bridge's arrays."""
    declare(env, {"a": block(slots=1)})
    sub = submit(env)
    env.fake.then("squeue", EMPTY, Answer(squeue_line(f"{JOB}_0", "RUNNING", sub.tag)))
    report = reconcile(env, slurm_jobs=None)
    assert report.clean and report.watching == [] and env.fake.count("sacct") == 1


def test_a_lost_split_is_queued_again_after_two_runs_and_submitted_once_under_a_new_tag(env):
    declare(env, {"a": block(slots=2)})
    old = submit(env)  # array JOB, which the fake Slurm never lists
    now = utcnow()
    first = reconcile(env, now, do_apply=True)
    assert first.of("lost") == [] and len(first.watching) == 2 and first.applied == []  # not yet: 1 of 2 runs
    second = reconcile(env, now + timedelta(seconds=11), do_apply=True)
    assert sorted(d.split_id for d in second.of("lost")) == sorted(old.split_ids)
    assert second.applied == [f"split {i} (array {JOB}): queued again, the next cycle submits it under a new tag"
                              for i in old.split_ids]
    rows = splits(env)
    assert [(s.status.value, s.submission_tag, s.slurm_job_id, s.slurm_element_id) for s in rows] == [
        ("N", None, None, None)] * 2
    with env.sessions() as session:
        history = session.scalars(select(StateHistory).where(StateHistory.source == "reconcile")).all()
        assert [(h.entity_id, h.from_status, h.to_status) for h in history] == [(i, "N", "N") for i in old.split_ids]
        assert f"array {JOB}" in history[0].reason and session.scalars(select(ReconcileMiss)).all() == []
    again = submit(env, JOB + 1)
    assert again.tag != old.tag and parse_tag(again.tag).deployment == "prod"
    assert env.fake.count("sbatch") == 2 and sorted(again.split_ids) == sorted(old.split_ids)
    third = reconcile(env, now + timedelta(seconds=20), slurm_jobs=squeue_line(f"{JOB + 1}_[0-1]", "PENDING",
                                                                                again.tag))
    assert third.clean and third.watching == []


def test_apply_scancels_the_orphan_of_this_deployment_only(env):
    ours, theirs = new_tag(deployment="prod"), new_tag(deployment="staging")
    listing = (squeue_line("600_[0-2]", "PENDING", ours) + squeue_line("601_0", "RUNNING", theirs)
               + squeue_line("602_0", "RUNNING", "an-admins-job"))
    env.fake.always("scancel", EMPTY)
    report = reconcile(env, slurm_jobs=listing, do_apply=True)
    assert [(d.kind, d.tag, d.slurm_id) for d in report.divergences] == [("orphan", ours, "600")]
    assert env.fake.of("scancel") == [("scancel", "600")] and report.applied == [f"scancel 600 ({ours}): sent"]
    lines = render(report)
    assert lines[0].startswith("1 divergences: 1 orphan (deployment prod, sacct since ")
    assert lines[1].split()[:9] == ["orphan", "experiment", "-", "block", "-", "split", "-", "slurm", "600"]
    assert lines[2] == f"applied: scancel 600 ({ours}): sent"


def test_the_command_exits_2_when_slurm_or_the_configuration_cannot_be_read(tmp_path, capsys):
    """An empty slurm.conf: squeue really fails, at once (no fake). Exit 2, one line naming the command."""
    (tmp_path / "empty-slurm.conf").write_text("")  # a missing one makes squeue retry for 60 s first
    config = write_config(tmp_path, tmp_path / "empty-slurm.conf", QUEUES)
    assert main(["reconcile", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("beat-bridge reconcile: error: squeue")
    assert "nothing was judged" in err[0]
    assert main(["reconcile", "--json", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["error"].startswith("squeue") and json.loads(out)["clean"] is False
    (tmp_path / "bad.toml").write_text('deployment = "Prod"\ncache_root = "c"\nspool_dir = "s"\n')
    assert main(["reconcile", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "deployment = 'Prod' is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["reconcile", "--since", "yesterday"])
    assert usage.value.code == 2 and "not a time: expected YYYY-MM-DD" in capsys.readouterr().err
