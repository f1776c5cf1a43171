"""The waiting daemon is woken by another writer's commit and submits at once, without asking Slurm again.

Through the replay fake: the loop polls every 30 s; the experiment scheduled
beside it goes out in a cycle that calls sbatch but not squeue (poller.loop's
skipped poll: new work needs no squeue, so other writers never make the
daemon poll Slurm faster).
"""

from __future__ import annotations

import threading

from fakes import Answer, Recording
from replay_env import block, declare, make_replay_env, submit

from bridge.config import PollConfig
from bridge.db import write_sessions
from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment
from bridge.models import Experiment
from poller.loop import BridgeLoop


def _wait_until(what: str, probe, stop: threading.Event) -> None:
    """probe() until true; fails naming `what` after 30 s (the daemon's interval: it must come sooner)."""
    for _ in range(600):
        if probe():
            return
        stop.wait(0.05)
    raise AssertionError(f"{what}: not seen")


def test_a_commit_beside_the_waiting_daemon_is_submitted_in_a_cycle_without_squeue(tmp_path):
    env = make_replay_env(tmp_path)
    declare(env, {"a": block()})
    running = submit(env)  # on Slurm, running: every poll must ask squeue about it
    env.fake.always("squeue", Recording.load("running").answer("squeue", running.job_id, running.tag))
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(min_interval=30, max_interval=30))
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        _wait_until("the first cycle", lambda: loop.cycles >= 1, loop._stop)
        assert env.fake.count("squeue") == 1
        env.fake.then("sbatch", Answer("4343\n"))
        with write_sessions(env.sessions)() as session:  # the web server; size 6: not a mirror of a
            later = load_experiment(session, {"name": "later", "author": "bob", "blocks": {"b": block(size=6)}})
            schedule_experiment(session, later)
            later_id = later.id
        _wait_until("the later experiment submitted", lambda: env.fake.count("sbatch") == 2, loop._stop)
    finally:
        loop.stop()
        thread.join(timeout=30)
    assert loop.woken["database"] >= 1  # declaring and scheduling are two commits: one or two wake-ups
    assert env.fake.count("squeue") == 1  # submitted, and Slurm not polled again
    with env.sessions() as session:
        job = session.get(Experiment, later_id).blocks[0].job
        assert {s.slurm_job_id for s in job.splits} == {"4343"}


def test_due_snapshots_wait_while_result_files_are_watched_and_no_longer_than_their_bound(tmp_path, monkeypatch):
    """Their sacct would come between an element's result and the daemon seeing it (bench/dag_latency.py)."""
    from bridge import snapshots
    from bridge.cycle import CycleReport
    from poller import loop as loop_module
    from poller.poll import PollReport

    env = make_replay_env(tmp_path)
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(min_interval=30, max_interval=30))
    reads = []
    monkeypatch.setattr(snapshots, "refresh", lambda session, client: reads.append(1) or snapshots.SnapshotRound())
    report = CycleReport(poll=PollReport(active=1))
    loop.results.active = {"bb-tag": {0}}  # a watched element: its result may come any moment
    loop._between_cycles(1.0, report)
    assert reads == []
    loop._snapshots_deferred_since -= loop_module.SNAPSHOTS_DEFERRED_AT_MOST  # as long as they may wait
    loop._between_cycles(1.0, report)
    assert reads == [1]
    loop.results.active = {}  # nothing watched: read at once
    loop._between_cycles(1.0, report)
    assert reads == [1, 1]
    loop.wake.close()
