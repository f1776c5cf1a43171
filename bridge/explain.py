"""Why an experiment is where it is: plain rows in, one dict out (`beat-bridge experiments show`).

Pure: bridge.explain_read gathers the rows (database, one squeue, the element
logs) and bridge.explain_text prints the dict; `--json` prints it as is.
A block's splits come from three places, merged by split index: the live
split rows (while its job exists), the accounting snapshots (bridge.snapshots:
they outlive the job rows BEAT deletes when a block ends) and the Result rows
(kept with the block: BEAT's user and system errors, and the failures at
submission, which never had an element). A live row wins over a snapshot, a
later snapshot over an earlier one (the block ran again). A split that failure-
aware resubmission ran again (bridge.resubmission) has one snapshot per attempt:
the latest attempt is the split's line, and the earlier ones are listed under it
as `attempts` (element, node, Slurm state, verdict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.status import FINAL_SPLIT, BlockStatus, ExperimentStatus, SplitStatus

LIVE, SNAPSHOT, RESULT = "database", "accounting snapshot", "result only"
FINAL = {s.value for s in FINAL_SPLIT}


@dataclass(frozen=True)
class ExperimentRow:
    id: int
    author: str
    name: str
    status: str  # BEAT's letter
    created: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None


@dataclass(frozen=True)
class JobRow:
    """A block's job while it exists; `original` is the job a mirror follows, `mirrors` those following it."""

    id: int
    mirror: bool = False
    runnable: datetime | None = None
    original: str | None = None  # "author/experiment/block"
    mirrors: tuple[str, ...] = ()


@dataclass(frozen=True)
class BlockRow:
    id: int
    name: str
    status: str
    queue: str | None = None
    partition: str | None = None
    required_slots: int = 1
    depends_on: tuple[str, ...] = ()
    started: datetime | None = None
    ended: datetime | None = None
    job: JobRow | None = None


@dataclass(frozen=True)
class SplitRow:
    """A live job_splits row: BEAT's side and the Slurm side the poller recorded."""

    id: int
    block_id: int
    index: int
    status: str
    tag: str | None = None
    element_id: str | None = None
    slurm_state: str | None = None
    node: str | None = None
    exit_code: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    attempt: int = 1  # > 1: resubmitted after a failure (bridge.resubmission)
    queue: str | None = None  # the queue a resubmission sent it to, when not its block's
    mapping_version: str | None = None  # the queue mapping its array rendered with (bridge.queue_versions)


@dataclass(frozen=True)
class SnapshotRow:
    """An accounting snapshot (bridge.models_audit) of a settled split."""

    split_id: int
    block_name: str
    element_id: str
    split_status: str
    split_index: int | None = None  # None before migration 0006: the element's array index stands in
    tag: str | None = None
    state: str | None = None
    exit_code: str | None = None
    node: str | None = None
    elapsed_s: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    verdict: str | None = None
    mapping_version: str | None = None
    attempt: int = 1  # the split's attempt this element ran (bridge.resubmission)
    queue: str | None = None  # the queue the attempt ran on


@dataclass(frozen=True)
class ResultRow:
    block_id: int
    split_index: int | None
    status: int = 0
    user_error: str | None = None
    system_error: str | None = None
    timed_out: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class LogFacts:
    """An element's log files: where, whether they are still there, the last lines of its stderr."""

    stdout: str
    stderr: str
    state: str  # "present", "removed" (spool_retention), "not written" (not started), "missing"
    tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """Everything explain() reads, gathered by bridge.explain_read."""

    experiment: ExperimentRow
    blocks: Sequence[BlockRow]
    splits: Sequence[SplitRow] = ()
    snapshots: Sequence[SnapshotRow] = ()
    results: Sequence[ResultRow] = ()
    logs: Mapping[str, LogFacts] | None = None  # by element id
    reasons: Mapping[str, str] | None = None  # pending elements' reasons, by element id
    slurm_asked: bool = False
    slurm_error: str | None = None


def explain(facts: Facts, now: datetime) -> dict[str, Any]:
    """The experiment, its blocks and every split, with the first failure's why on top."""
    e = facts.experiment
    blocks = [_block(b, facts, now) for b in facts.blocks]
    done = sum(1 for b in facts.blocks if b.status == BlockStatus.DONE.value)
    return {
        "id": e.id, "name": f"{e.author}/{e.name}", "status": e.status,
        "status_name": _name(ExperimentStatus, e.status),
        "created": _iso(e.created), "started": _iso(e.started), "ended": _iso(e.ended),
        "blocks_done": done, "blocks_total": len(blocks),
        "slurm": {"asked": facts.slurm_asked, "error": facts.slurm_error},
        "why": why(blocks), "blocks": blocks,
    }


def why(blocks: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The first failed split (block order, split index): where it ran and its error; None when none failed."""
    for block in blocks:
        for split in block["splits"]:
            if split["status"] == SplitStatus.FAILED.value:
                return {"block": block["name"], "split": split["index"], "element_id": split["element_id"],
                        "node": split["node"], "error": error_line(split)}
    return None


def error_line(split: Mapping[str, Any]) -> str | None:
    """What a failed split says of itself: user error, else system error, else the last stderr line."""
    for key in ("user_error", "system_error"):
        text = (split.get(key) or "").strip()
        if text:
            return text.splitlines()[-1] if key == "user_error" else text.splitlines()[0]
    tail = [line for line in split.get("stderr_tail") or () if line.strip()]
    return tail[-1] if tail else None


def _block(block: BlockRow, facts: Facts, now: datetime) -> dict[str, Any]:
    splits = merged_splits(block, facts, now)
    job = block.job
    return {
        "name": block.name, "status": block.status, "status_name": _name(BlockStatus, block.status),
        "queue": block.queue, "partition": block.partition, "required_slots": block.required_slots,
        "depends_on": list(block.depends_on), "started": _iso(block.started), "ended": _iso(block.ended),
        "job": None if job is None else {"id": job.id, "mirror": job.mirror, "runnable": _iso(job.runnable),
                                         "original": job.original, "mirrors": list(job.mirrors)},
        "counts": _counts(splits), "splits": splits,
    }


def merged_splits(block: BlockRow, facts: Facts, now: datetime) -> list[dict[str, Any]]:
    """The block's splits by index: live rows, else the latest snapshot, else a Result alone.

    Of a split's snapshots the latest attempt's stands for the split (a live row's only if it is
    of the live attempt); the earlier attempts are listed under it."""
    results = {r.split_index: r for r in facts.results if r.block_id == block.id}  # rows come oldest first
    attempts: dict[int, list[SnapshotRow]] = {}
    for snap in sorted((s for s in facts.snapshots if s.block_name == block.name),
                       key=lambda s: (s.split_id, s.attempt)):
        attempts.setdefault(snap.split_id, []).append(snap)
    by_index: dict[int, dict[str, Any]] = {}
    for split_id in sorted(attempts):
        snap = attempts[split_id][-1]
        index = snap.split_index if snap.split_index is not None else array_index(snap.element_id)
        if index is not None:
            by_index[index] = _from_snapshot(snap, index)
            by_index[index]["attempts"] = [_earlier(s) for s in attempts[split_id][:-1]]
    for row in facts.splits:
        if row.block_id == block.id:
            snaps = attempts.get(row.id, [])
            live = [s for s in snaps if s.attempt == row.attempt]
            by_index[row.index] = _from_live(row, live[-1] if live else None, facts, now)
            by_index[row.index]["attempts"] = [_earlier(s) for s in snaps if s.attempt < row.attempt]
    for index, result in results.items():
        if index is not None and index not in by_index:
            by_index[index] = _empty(index, SplitStatus.CANCELLED.value if result.cancelled
                                     else SplitStatus.FAILED.value if result.status else
                                     SplitStatus.COMPLETED.value, RESULT)
    for index, split in by_index.items():
        _add_result(split, results.get(index))
        _add_logs(split, (facts.logs or {}).get(split["element_id"] or ""))
    return [by_index[i] for i in sorted(by_index)]


def array_index(element_id: str) -> int | None:
    """`4242_3` -> 3: the array index, which is the split index below MaxArraySize."""
    _, _, task = element_id.partition("_")
    return int(task) if task.isdigit() else None


def _empty(index: int, status: str, source: str) -> dict[str, Any]:
    return {"index": index, "split_id": None, "status": status, "status_name": _name(SplitStatus, status),
            "source": source, "element_id": None, "tag": None, "slurm_state": None, "node": None,
            "pending_reason": None, "exit_code": None, "elapsed_s": None, "verdict": None,
            "mapping_version": None, "user_error": None, "system_error": None, "timed_out": False,
            "logs": None, "stderr_tail": [], "attempt": 1, "queue": None, "attempts": []}


def _from_live(row: SplitRow, snap: SnapshotRow | None, facts: Facts, now: datetime) -> dict[str, Any]:
    split = _empty(row.index, row.status, LIVE)
    reason = (facts.reasons or {}).get(row.element_id or "") if row.status == SplitStatus.QUEUED.value else None
    running = row.status in (SplitStatus.PROCESSING.value, SplitStatus.CANCELLING.value)
    split.update(split_id=row.id, element_id=row.element_id, tag=row.tag, slurm_state=row.slurm_state,
                 node=row.node, exit_code=row.exit_code, pending_reason=reason,
                 elapsed_s=_elapsed(row.start, row.end or (now if running else None)), attempt=row.attempt,
                 queue=row.queue, mapping_version=row.mapping_version)
    if snap is not None:
        split.update(verdict=snap.verdict, mapping_version=snap.mapping_version or row.mapping_version,
                     elapsed_s=snap.elapsed_s if snap.elapsed_s is not None else split["elapsed_s"])
    return split


def _from_snapshot(snap: SnapshotRow, index: int) -> dict[str, Any]:
    split = _empty(index, snap.split_status, SNAPSHOT)
    split.update(split_id=snap.split_id, element_id=snap.element_id, tag=snap.tag, slurm_state=snap.state,
                 node=snap.node, exit_code=snap.exit_code, verdict=snap.verdict,
                 mapping_version=snap.mapping_version, attempt=snap.attempt,
                 queue=snap.queue if snap.attempt > 1 else None,
                 elapsed_s=snap.elapsed_s if snap.elapsed_s is not None else _elapsed(snap.start, snap.end))
    return split


def _earlier(snap: SnapshotRow) -> dict[str, Any]:
    """An earlier attempt of a resubmitted split, from its snapshot."""
    return {"attempt": snap.attempt, "element_id": snap.element_id, "node": snap.node, "queue": snap.queue,
            "status": snap.split_status, "slurm_state": snap.state, "exit_code": snap.exit_code,
            "elapsed_s": snap.elapsed_s if snap.elapsed_s is not None else _elapsed(snap.start, snap.end),
            "verdict": snap.verdict}


def _add_result(split: dict[str, Any], result: ResultRow | None) -> None:
    if result is not None and split["status"] in FINAL:  # a running split's Result would be an older run's
        split.update(user_error=result.user_error, system_error=result.system_error, timed_out=result.timed_out)


def _add_logs(split: dict[str, Any], logs: LogFacts | None) -> None:
    if logs is not None:
        split["logs"] = {"stdout": logs.stdout, "stderr": logs.stderr, "state": logs.state}
        split["stderr_tail"] = list(logs.tail)


def _counts(splits: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for split in splits:
        counts[split["status"]] = counts.get(split["status"], 0) + 1
    return dict(sorted(counts.items()))


def _elapsed(start: datetime | None, end: datetime | None) -> int | None:
    return max(0, int((end - start).total_seconds())) if start is not None and end is not None else None


def _name(enum: type, letter: str) -> str:
    try:
        return enum(letter).name.lower()
    except ValueError:
        return "unknown"


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(sep=" ", timespec="seconds") if when is not None else None
