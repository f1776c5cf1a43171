"""The daemon's memory of the active splits (poller.memory) on the real cluster, on SQLite and PostgreSQL.

The real BridgeLoop follows a held array; between its cycles another daemon
(its own engine and sessions) submits an experiment whose elements run and
finish. The loop's memory must notice the other's writes, see the elements
start and finish, and leave the held array pending; a restarted loop (a fresh
memory) adopts the held splits again.
"""

from __future__ import annotations

from bridge_env import QUEUES, block, make_env
from poller_env import FAST, run_loop, schedule, status
from sqlalchemy import select

from bridge.db import create_session_factory
from bridge.declaration import load_experiment
from bridge.devcluster.sandbox import queue_toml
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.models import Experiment, JobSplit
from bridge.submit import assign_splits_to_workers
from poller.loop import BridgeLoop

HELD = queue_toml("held", extra='extra_directives = ["--hold"]')


def held_experiment() -> dict:
    return {"name": "held", "author": "hana", "blocks": {"h": block("square", queue="held", slots=3, size=3)}}


def running_experiment() -> dict:
    return {"name": "running", "author": "hana", "blocks": {
        "r": block("sleep_then_copy", slots=2, size=2, parameters={"seconds": 1})}}


def _final(session, experiment_id: int) -> bool:
    """Whether the experiment is over (None: not yet visible in this session's snapshot)."""
    experiment = session.get(Experiment, experiment_id)
    return experiment is not None and experiment.status.value in ("D", "F")


def test_the_memory_follows_another_daemons_submission_and_a_restart_adopts_the_held_array(
        tmp_path, slurm_cluster, slurm, db_url):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=QUEUES + HELD, db_url=db_url)
    held = schedule(env, held_experiment())
    other = create_session_factory(env.config.database_url)  # another daemon: its own engine
    started: list[int] = []

    def between_cycles(session, report):
        if report.submitted and not started:  # our loop submitted the held array: now the other daemon acts
            with other() as theirs:
                experiment = load_experiment(theirs, running_experiment())
                schedule_experiment(theirs, experiment)
                split_new_jobs(theirs, str(env.config.cache_root))
                assign_splits_to_workers(theirs, env.backend)
                started.append(experiment.id)

    try:
        loop = run_loop(env, lambda s: bool(started) and _final(s, started[0]), timeout=120,
                        on_cycle=between_cycles)
        assert status(env, started[0]) == "D"  # its elements were seen starting and finishing
        assert loop.memory.full_reads >= 2  # at start, and after the other daemon's writes
        with env.sessions() as session:
            rows = session.scalars(select(JobSplit).order_by(JobSplit.id)).all()
            held_rows = [(s.status.value, s.slurm_state) for s in rows if s.slurm_element_id]
        assert held_rows == [("N", None)] * 3 and status(env, held) == "S"  # pending: never started
        restarted = BridgeLoop(env.sessions, env.backend, FAST)  # a new process: a fresh memory
        restarted.run(once=True)
        assert restarted.memory.full_reads == 1 and restarted.squeue_calls == 1
        with env.sessions() as session:
            assert [s.status.value for s in session.scalars(select(JobSplit))] == ["N"] * 3
    finally:
        with env.sessions() as session:
            arrays = {s.slurm_job_id for s in session.scalars(select(JobSplit)) if s.slurm_job_id}
        env.backend.client.cancel(arrays)
