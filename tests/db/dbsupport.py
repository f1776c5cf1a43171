"""Test support for the scheduling suite: declarations and driving blocks through their events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge import helpers
from bridge.declaration import load_experiment
from bridge.models import Block, Experiment, JobSplit, Queue

OK = {"status": 0, "stdout": "out\n", "stderr": "", "statistics": {"cpu": {"user": 1.0},
      "data": {"written": 10}}}


def block(
    algorithm: str = "pkg.mod:func", *, inputs: dict | None = None, slots: int = 1,
    queue: str = "cpu", parameters: dict | None = None, **extra: Any,
) -> dict[str, Any]:
    """One block of a declaration, with output 'out'."""
    spec = {"algorithm": algorithm, "queue": queue, "environment": "python-3.11",
            "required_slots": slots, "outputs": ["out"], "parameters": parameters or {},
            "inputs": inputs if inputs is not None else {"in": {"dataset": "numbers", "size": 4}}}
    spec.update(extra)
    return spec


def two_blocks(name: str = "exp", author: str = "alice", **first: Any) -> dict[str, Any]:
    """first (dataset input) -> second (first's output)."""
    return {"name": name, "author": author, "blocks": {
        "first": block(**first),
        "second": block("pkg.mod:second", inputs={"in": {"block": "first", "output": "out"}}),
    }}


def declare(session: Session, declaration: dict[str, Any], schedule: bool = True) -> Experiment:
    experiment = load_experiment(session, declaration)
    if schedule:
        helpers.schedule_experiment(session, experiment)
    return experiment


def get_block(session: Session, experiment: Experiment, name: str) -> Block:
    return session.scalar(select(Block).where(Block.experiment_id == experiment.id,
                                              Block.name == name))


def splits_of(session: Session, experiment: Experiment, name: str) -> list[JobSplit]:
    b = get_block(session, experiment, name)
    return list(b.job.splits) if b.job is not None else []


def run_block(session: Session, experiment: Experiment, name: str, result: dict = OK) -> None:
    """Split (if needed), start and finish every split of a block successfully."""
    if not splits_of(session, experiment, name):
        helpers.split_new_jobs(session)
    for split in splits_of(session, experiment, name):
        helpers.on_split_started(session, split)
        helpers.on_split_done(session, split, result)


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model))


def queue(session: Session, name: str = "cpu") -> Queue:
    return session.scalar(select(Queue).where(Queue.name == name))


def status(session: Session, obj: Any) -> str:
    session.refresh(obj)
    return obj.status.value

