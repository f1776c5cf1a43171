"""An idle `beat-bridge run` starts new work at once and sees elements end before its next poll.

The daemon polls Slurm every 60 s here (min = max), so anything that happens
before its next poll was due (its heartbeat's time + wait) was started by a
wake-up: another process's commit (bridge.wake: NOTIFY on PostgreSQL,
data_version on SQLite) or an element's result file (poller.early). The
assertions are on that order and on BEAT's semantics, never on durations.
"""

from __future__ import annotations

import signal
from datetime import timedelta

from bridge_env import block, make_env
from poller_env import FINAL, blocks, start_run, status, wait_for
from sqlalchemy import select

from bridge import heartbeat
from bridge.db import write_sessions
from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment
from bridge.models import StateHistory
from bridge.status import BlockStatus, CacheStatus

SLOW_POLL = "[poll]\nmin_interval = 60\nmax_interval = 60\n"


def _idle_beat(env):
    """The heartbeat of the daemon's first, idle cycle (nothing to do yet)."""
    def beat():
        with env.sessions() as session:
            found = heartbeat.read(session)
            return found if found.cycles >= 1 else None
    return wait_for("the daemon's first cycle", beat, timeout=30, every=0.1)


def schedule(env, declaration: dict) -> int:
    """Add and schedule an experiment as the web server does beside the running daemon (write sessions)."""
    with write_sessions(env.sessions)() as session:
        experiment = load_experiment(session, declaration)
        schedule_experiment(session, experiment)
        return experiment.id


def _history(env, entity: str) -> list[StateHistory]:
    with env.sessions() as session:
        return list(session.scalars(select(StateHistory).where(StateHistory.entity == entity)
                                    .order_by(StateHistory.id)))


def test_idle_daemon_starts_new_work_and_sees_ends_before_its_next_poll(tmp_path, slurm_cluster, slurm, db_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=db_url, extra=SLOW_POLL)
    with open(tmp_path / "run.log", "ab") as log:
        run = start_run(tmp_path, log)
        try:
            idle = _idle_beat(env)
            due = idle.beat_at + timedelta(seconds=idle.next_in_s)  # the next poll, were nothing to wake it
            two = schedule(env, {"name": "two-levels", "author": "ann", "blocks": {
                "a": block("scale", slots=2, size=4, parameters={"factor": 3}),
                "b": block("square", slots=1, inputs={"in": {"block": "a", "output": "out"}})}})
            failing = schedule(env, {"name": "failing", "author": "ann", "blocks": {
                "f": block("fail_always", slots=1, size=2)}})
            wait_for("both experiments final", lambda: all(status(env, i) in FINAL for i in (two, failing)),
                     timeout=55, every=0.2)  # within the 60 s: no poll
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(timeout=20)
    text = (tmp_path / "run.log").read_text()
    assert code == 0, text[-3000:]
    assert (status(env, two), status(env, failing)) == ("D", "F"), text[-3000:]

    splits = _history(env, "job_splits")
    experiments = _history(env, "experiments")
    # everything happened before the idle daemon's next poll: woken by the commits and the result files
    assert max(r.at for r in splits + experiments) < due, (due, [(r.at, r.to_status) for r in experiments])
    assert any(r.to_status == "F" and r.source == "on_split_fail" for r in splits)
    with env.sessions() as session:
        found = blocks(session, two)
        assert [o.status.value for o in found["a"].outputs] == [CacheStatus.CACHED.value]  # verified ...
        a_done = session.scalars(select(StateHistory.id).where(
            StateHistory.entity == "blocks", StateHistory.entity_id == found["a"].id,
            StateHistory.to_status == BlockStatus.DONE.value)).one()
    b_created = max(r.id for r in splits if r.from_status is None)  # b's one split: split last
    assert b_created > a_done  # ... before b counted as unblocked and was split
