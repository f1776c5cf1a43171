"""A bridge on SQLite whose Slurm is the replay fake: the decision code without a cluster.

`replay_env(tmp_path)` gives config, sessions, the fake runner and a Backend
over it; helpers declare an experiment, submit it through the real submitter
(the fake's sbatch prints the array id the test chose) and play an element's
part (its result file and its cache files), so that a poll reads recorded
squeue/sacct text about splits that really exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fakes import Answer, Recording, ReplayRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.backend import Backend
from bridge.config import BridgeConfig
from bridge.declaration import load_experiment
from bridge.devcluster.sandbox import open_sandbox, queue_toml
from bridge.helpers import get_configuration_for_split, schedule_experiment, split_new_jobs
from bridge.models import Experiment, JobSplit
from bridge.sbatch_scripts import spool as spool_files
from bridge.sbatch_scripts.element_io import IOStats, write_output
from bridge.submission_db import mark_splits_submitting
from bridge.submit import Submission, assign_splits_to_workers
from poller.loop import CycleReport, run_cycle
from poller.poll import PollReport, poll_once

QUEUES = queue_toml("default")
FORGOTTEN = Answer(returncode=1, stderr="slurm_load_jobs error: Invalid job id specified\n")  # squeue, all ids gone
JOB = 4242  # the array id the fake's sbatch hands out first
OK_RESULT = {"status": 0, "stdout": "ok\n", "stderr": "", "user_error": None, "system_error": None,
             "timed_out": False, "statistics": {"cpu": {"user": 0.1}}}


@dataclass
class ReplayEnv:
    """One bridge over the replay fake."""

    root: Path
    config: BridgeConfig
    sessions: sessionmaker[Session]
    fake: ReplayRunner
    backend: Backend


def make_replay_env(root: Path, extra: str = "", queues: str = QUEUES, db_url: str | None = None) -> ReplayEnv:
    """A bridge directory (bridge.devcluster.sandbox) whose Slurm is the fake; sbatch retries do not sleep."""
    # sacct with steps (accounting snapshots) answers nothing unless a test says otherwise: "not yet"
    fake = ReplayRunner().always("scontrol", Answer("MaxArraySize = 1001\n")).always("sacct_usage", Answer())
    sandbox = open_sandbox(root, root / "slurm.conf", queues, fake, db_url=db_url, extra=(
        f"cache_errors = 2\n{extra}\n[retry]\nattempts = 3\nbase_delay = 0.01\nmax_delay = 0.02\n"))
    backend = replace(sandbox.backend, sleep=lambda seconds: None)
    return ReplayEnv(root, sandbox.config, sandbox.sessions, fake, backend)


def block(slots: int = 2, size: int = 4, **extra: Any) -> dict[str, Any]:
    spec = {"algorithm": "bridge.examples.algorithms:square", "queue": "default", "environment": "Python-3.11",
            "required_slots": slots, "inputs": {"in": {"dataset": "numbers", "size": size}}, "outputs": ["out"]}
    spec.update(extra)
    return spec


def declare(env: ReplayEnv, blocks: dict[str, dict], name: str = "exp", author: str = "alice") -> int:
    """Add and schedule an experiment, and split its runnable jobs; its id."""
    with env.sessions() as session:
        experiment = load_experiment(session, {"name": name, "author": author, "blocks": blocks})
        schedule_experiment(session, experiment)
        split_new_jobs(session, str(env.config.cache_root))
        return experiment.id


def submit(env: ReplayEnv, job: int = JOB) -> Submission:
    """Submit the candidates through the real submitter, the fake's sbatch answering `job`: one array."""
    env.fake.then("sbatch", Answer(f"{job}\n"))
    with env.sessions() as session:
        (submission,) = assign_splits_to_workers(session, env.backend)
    return submission


def answer(env: ReplayEnv, scenario: str, name: str, submission: Submission, kind: str | None = None) -> None:
    """Queue a recorded call of `scenario` for the next `kind` call (default: the call's own name)."""
    recorded = Recording.load(scenario).answer(name, submission.job_id, submission.tag)
    env.fake.then(kind or name, recorded)


def recorded_stdout(scenario: str, name: str, submission: Submission) -> str:
    """The stdout of a recorded call, rendered for the submission's array and tag."""
    return Recording.load(scenario).answer(name, submission.job_id, submission.tag).stdout


def submit_all(env: ReplayEnv) -> list[Submission]:
    """Every queue's candidates through the real submitter, with whatever the fake's sbatch answers."""
    with env.sessions() as session:
        return assign_splits_to_workers(session, env.backend)


def claim_all(env: ReplayEnv, tag: str) -> None:
    """Claim every split with `tag`, as a submitter does before sbatch (and then died or lost its answer)."""
    with env.sessions() as session:
        mark_splits_submitting(session, list(session.scalars(select(JobSplit))), tag)


def cycle(env: ReplayEnv) -> CycleReport:
    """One whole cycle, as `run --once` does it."""
    with env.sessions() as session:
        return run_cycle(session, env.backend)


def poll(env: ReplayEnv, finished: frozenset[tuple[str, int]] = frozenset()) -> PollReport:
    """One poll; `finished`: the elements whose result file the daemon has seen (poller.early)."""
    with env.sessions() as session:
        return poll_once(session, env.backend, finished=finished)


def splits(env: ReplayEnv) -> list[JobSplit]:
    with env.sessions() as session:
        found = list(session.scalars(select(JobSplit).order_by(JobSplit.id)))
        session.expunge_all()
        return found


def statuses(env: ReplayEnv) -> list[str]:
    """Every split's status letter, in id order."""
    return [s.status.value for s in splits(env)]


def status_of(env: ReplayEnv, experiment_id: int) -> str:
    with env.sessions() as session:
        return session.get(Experiment, experiment_id).status.value


def element_done(env: ReplayEnv, submission: Submission, index: int,
                 result: dict[str, Any] | None = None, cache: bool = True) -> None:
    """Play element `index` of the array: its outputs in the cache (squares of its range) and its result file."""
    with env.sessions() as session:
        split = session.get(JobSplit, submission.split_ids[index])
        configuration = get_configuration_for_split(split, str(env.config.cache_root))
    if cache:
        start, end = configuration["range"] or (0, 0)
        for output in configuration["outputs"].values():
            write_output(Path(env.config.cache_root), output["path"], start,
                         [i * i for i in range(start, end + 1)], IOStats())
    spool = spool_files.array_spool_dir(env.config.spool_dir, submission.tag)
    spool_files.result_file(spool, index).write_text(json.dumps(result or OK_RESULT))
