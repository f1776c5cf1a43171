"""Where the time of one DAG run went, per phase, from what the run left behind.

Timestamps used: the state history rows (experiment scheduled and done, each
split's creation and on_split_done, microseconds, UTC), the spool's files (an
array's manifest is written just before its sbatch; a result file is the
element's last act) and each Result's own elapsed time. No log parsing.
Phases per level: split+submit (the level's splits created -> its manifest
written), Slurm start (-> the first element's work begins: Slurm's start
and the element's interpreter start-up), element (the longest work), element spread (its
elements ending apart: they do not all start together), detection
(the last result file -> the last on_split_done), callbacks (-> the next level's
splits created, or the experiment done).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.models import Block, Experiment, Result, StateHistory


def epoch(at: datetime) -> float:
    """A naive UTC datetime of the database as seconds since the epoch."""
    return at.replace(tzinfo=timezone.utc).timestamp()


@dataclass
class Level:
    split: float  # first split created
    submitted: float  # last split file written (just before sbatch)
    work_start: float  # first element's work began
    element: float  # longest element's work
    last_result: float  # last result file written
    last_done: float  # last on_split_done


@dataclass
class Profile:
    scheduled: float  # the experiment's commit (P -> S)
    done: float  # the experiment D
    levels: list[Level]

    def phases(self, command_at: float | None) -> list[tuple[str, float]]:
        """(name, seconds) in order, from the command (if given) to the experiment done."""
        out = [("CLI", self.scheduled - command_at)] if command_at is not None else []
        out.append(("wake-up", self.levels[0].split - self.scheduled))
        for number, level in enumerate(self.levels, 1):
            after = self.levels[number].split if number < len(self.levels) else self.done
            out += [(f"L{number} split+submit", level.submitted - level.split),
                    (f"L{number} Slurm start", level.work_start - level.submitted),
                    (f"L{number} element", level.element),
                    (f"L{number} element spread", level.last_result - level.work_start - level.element),
                    (f"L{number} detection", level.last_done - level.last_result),
                    (f"L{number} callbacks", after - level.last_done)]
        return out


def profile(session: Session, experiment_id: int, spool_dir: Path, level_names: list[str],
            splits_of: dict[int, set[int]]) -> Profile:
    """The profile of a finished experiment whose blocks are the levels, in order.

    `splits_of`: block id -> its split ids, seen while it ran (its rows are deleted once done).
    """
    experiment = session.get(Experiment, experiment_id)
    rows = _history(session, "experiments", [experiment_id])
    scheduled = min(epoch(r.at) for r in rows if r.to_status == "S")
    done = min(epoch(r.at) for r in rows if r.to_status == "D")
    blocks = {b.name: b for b in experiment.blocks}
    files = _spool_files(spool_dir)
    levels = [_level(session, blocks[name], files, sorted(splits_of[blocks[name].id])) for name in level_names]
    return Profile(scheduled, done, levels)


def _history(session: Session, entity: str, ids: list[int]) -> list[StateHistory]:
    return list(session.scalars(select(StateHistory).where(
        StateHistory.entity == entity, StateHistory.entity_id.in_(ids)).order_by(StateHistory.id)))


def _spool_files(spool_dir: Path) -> dict[int, dict[str, list[float]]]:
    """block id -> {"split": its arrays' manifest mtimes (written just before sbatch), "result": result mtimes}."""
    found: dict[int, dict[str, list[float]]] = {}
    for manifest in Path(spool_dir).glob("*/manifest.jsonl"):
        with manifest.open() as file:
            block_id = json.loads(file.readline())["configuration"]["block_id"]
        entry = found.setdefault(block_id, {"split": [], "result": []})
        entry["split"].append(manifest.stat().st_mtime)
        entry["result"] += [result.stat().st_mtime for result in manifest.parent.glob("split-*.result.json")]
    return found


def _level(session: Session, block: Block, files: dict[int, dict[str, list[float]]], split_ids: list[int]) -> Level:
    results = list(session.scalars(select(Result).where(Result.block_id == block.id)))
    elapsed = [r.statistics["time"]["elapsed"] for r in results]
    history = _history(session, "job_splits", split_ids)
    created = [epoch(r.at) for r in history if r.from_status is None]
    done = [epoch(r.at) for r in history if r.to_status == "C"]
    mtimes = files[block.id]
    ends = sorted(mtimes["result"])
    # each element's work began `elapsed` before its result file: pair the earliest ends with the shortest
    starts = [end - e for end, e in zip(ends, sorted(elapsed), strict=False)]
    return Level(min(created), max(mtimes["split"]), min(starts), max(elapsed), max(ends), max(done))
