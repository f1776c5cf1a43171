"""Settled arrays' spool directories (manifest, results, element logs) are removed after the retention
(issue 9, hole 8); anything still active, claimed, young, or not of the bridge's making is kept.

Real spool files and database; Slurm is the replay fake (recorded squeue answers).
"""

from __future__ import annotations

import os
import time

import pytest
from fakes import Answer
from replay_env import answer, block, cycle, declare, element_done, make_replay_env, status_of, submit

from bridge import spool_retention
from bridge.sbatch_scripts import spool as spool_files


def spool_of(env, sub):
    return spool_files.array_spool_dir(env.config.spool_dir, sub.tag)


@pytest.fixture(autouse=True)
def sweep_every_cycle(monkeypatch):
    monkeypatch.setattr(spool_retention, "SWEEP_EVERY", 0.0)


def test_a_settled_arrays_spool_is_removed_once_past_the_retention_and_active_ones_are_kept(tmp_path):
    env = make_replay_env(tmp_path, extra="spool_retention_hours = 1.0")
    done = declare(env, {"a": block()}, name="done")
    finished = submit(env, job=100)
    declare(env, {"b": block(size=6)}, name="running")
    running = submit(env, job=200)
    for index in (0, 1):
        element_done(env, finished, index)
    answer(env, "completed", "squeue", finished)
    env.fake.always("sacct", Answer(""))  # the running array: unknown to both yet, so still active
    cycle(env)
    assert status_of(env, done) == "D" and spool_of(env, finished).is_dir()  # settled, but young: kept
    old = time.time() - 2 * 3600
    for directory in (spool_of(env, finished), spool_of(env, running)):
        for path in (directory, *directory.iterdir()):
            os.utime(path, (old, old))
    stranger = env.config.spool_dir / "not-a-tag"
    stranger.mkdir()
    os.utime(stranger, (old, old))
    env.fake.always("squeue", Answer(""))
    cycle(env)
    assert not spool_of(env, finished).exists()
    assert spool_of(env, running).is_dir() and stranger.is_dir()


def test_a_sweep_runs_at_most_once_per_interval_per_spool(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_retention, "SWEEP_EVERY", 600.0)
    assert spool_retention.due(tmp_path, now=1000.0) is True
    assert spool_retention.due(tmp_path, now=1500.0) is False
    assert spool_retention.due(tmp_path / "other", now=1500.0) is True
    assert spool_retention.due(tmp_path, now=1600.0) is True
