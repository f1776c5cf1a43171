"""What an array element runs: its split's configuration, as the part all splits share plus its own entry.

``get_configuration_for_split`` (the seed's function) is the block's command
with the split's range and identifiers. The submitter builds it per array, not
per split (issue 12): ``array_configuration`` once from ``JobFacts`` (read in
one query), then ``split_entry`` for each split, written together as the
array's manifest (bridge.sbatch_scripts.spool); the element merges the two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from bridge.cache import CacheError
from bridge.cache import cache_root as resolve_cache_root
from bridge.models import Block, Experiment, Job, JobSplit, block_dependencies
from bridge.submission_rows import ClaimedSplit


@dataclass(frozen=True)
class JobFacts:
    """What an array's manifest and script say of its job, read once as plain values."""

    job_id: int
    block_id: int
    block_name: str
    experiment_name: str
    command: str
    nb_splits: int
    author: str  # the experiment's: its arrays' Slurm account may be the author's ([accounts], bridge.accounts_config)
    hands_over: bool = False  # some block depends on this one: its elements linger for their release (bridge.handover)


def job_facts(session: Session, job_id: int) -> JobFacts | None:
    """The job's facts in one query (None if the job is gone); loads no ORM object."""
    nb_splits = select(func.count(JobSplit.id)).where(JobSplit.job_id == Job.id).scalar_subquery()
    dependents = exists().where(block_dependencies.c.dependency_id == Block.id)
    row = session.execute(
        select(Job.id, Block.id, Block.name, Experiment.name, Block.command, nb_splits, Experiment.author, dependents)
        .join(Job.block).join(Block.experiment).where(Job.id == job_id)).one_or_none()
    return None if row is None else JobFacts(*row)


def facts_of(job: Job) -> JobFacts:
    """The facts of a loaded job (its splits counted as loaded)."""
    block = job.block
    return JobFacts(job.id, block.id, block.name, block.experiment.name, block.command, len(job.splits),
                    block.experiment.author, bool(block.dependents))


def array_configuration(job: JobFacts, cache_root: str | None = None) -> dict[str, Any]:
    """What every split of the job shares in its configuration: built once per array.

    Input and output ``path`` entries are relative to the cache root, given
    as ``cache`` when one is passed or configured (None otherwise).
    """
    configuration = json.loads(job.command)
    try:
        root: str | None = str(resolve_cache_root(cache_root))
    except CacheError:
        root = None
    configuration.update(nb_splits=job.nb_splits, job_id=job.job_id, block_id=job.block_id, cache=root)
    return configuration


def split_entry(split: JobSplit | ClaimedSplit) -> dict[str, Any]:
    """What is a split's own in its configuration: its range, index and id."""
    return {"range": None if split.start_index is None else [split.start_index, split.end_index],
            "split_index": split.split_index, "split_id": split.id}


def get_configuration_for_split(split: JobSplit, cache_root: str | None = None) -> dict[str, Any]:
    """What an array element needs: the block's command, its range and its identifiers.

    The array's shared configuration updated with the split's own entry, as
    the element merges them from the manifest.
    """
    return {**array_configuration(facts_of(split.job), cache_root), **split_entry(split)}
