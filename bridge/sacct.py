"""Parse `sacct -X --parsable2 --noheader` output into SlurmRecords, one per array element.

Slurm 22.05 has no ArrayJobID/ArrayTaskID fields and no --array flag, so the
element is read from JobID: `J_T` (an element), `J_[a-b%N]` or `J_[1,3,5-7]` (a
pending range, expanded here into one record per element), `J` (a plain job, or
the short-lived `RAWID|allocation|FAILED` row of an array element that has no
`_T` yet: such a row has array_task_id None and pending_range False, and the
poller ignores it for a known array). A bad line is logged and skipped, never fatal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from bridge.slurm import SACCT_FIELDS

log = logging.getLogger(__name__)

FIELDS = SACCT_FIELDS
REQUIRED = ("JobID", "State")
_JOB_ID = re.compile(r"^(\d+)(?:_(\d+|\[[^\]]*\]))?(?:\+\d+)?(?:\.(\S+))?$")
_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
_NO_TIME = {"", "unknown", "none", "n/a"}


class ArrayIdError(ValueError):
    """A JobID that is not `J`, `J_T` or `J_[ranges]`."""


@dataclass(frozen=True)
class SlurmRecord:
    """One row of sacct or squeue (read into sacct's fields), for one job or one array element."""

    job_id: str  # "123_4" (element), "123" (plain job or an element's bare allocation row)
    array_job_id: int  # the number before "_" (the job id itself for a plain job)
    array_task_id: int | None  # None for a plain job or a row without "_T"
    raw_id: str
    name: str
    partition: str
    state: str  # first word, "+" stripped: "CANCELLED"
    state_text: str  # as printed: "CANCELLED by 0"
    exit_code: int
    signal: int
    node_list: str
    submit: datetime | None
    start: datetime | None
    end: datetime | None
    comment: str = ""
    pending_range: bool = False  # expanded from a `J_[a-b]` row: pending, not started
    step: str | None = None  # "batch", "0"... (only without -X)

    @property
    def is_element(self) -> bool:
        return self.array_task_id is not None and self.step is None


def expand_array_id(job_id: str) -> list[tuple[int, int | None]]:
    """`123_[4-9%2]` -> [(123, 4), ..., (123, 9)]; `123_7` -> [(123, 7)]; `123` -> [(123, None)]."""
    match = _JOB_ID.match(job_id.strip())
    if not match:
        raise ArrayIdError(f"not a Slurm job id: {job_id!r}")
    array_id, task, _step = int(match.group(1)), match.group(2), match.group(3)
    if task is None:
        return [(array_id, None)]
    if not task.startswith("["):
        return [(array_id, int(task))]
    return [(array_id, t) for t in _expand_ranges(job_id, task[1:-1])]


def _expand_ranges(job_id: str, body: str) -> list[int]:
    """`1,3,5-7%2` -> [1, 3, 5, 6, 7]; `1-9:2` -> [1, 3, 5, 7, 9] (the `%N` throttle is dropped)."""
    body = body.split("%", 1)[0]
    tasks: list[int] = []
    for part in body.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise ArrayIdError(f"bad array range {part!r} in {job_id!r}")
        first, last, step = match.groups()
        lo, hi = int(first), int(last) if last is not None else int(first)
        if hi < lo or (step is not None and int(step) < 1):
            raise ArrayIdError(f"bad array range {part!r} in {job_id!r}")
        tasks.extend(range(lo, hi + 1, int(step) if step else 1))
    return tasks


def parse_time(text: str) -> datetime | None:
    """sacct's `2026-11-25T12:00:03`, or None for Unknown/None/empty."""
    if text.strip().lower() in _NO_TIME:
        return None
    return datetime.fromisoformat(text.strip())


def parse_exit_code(text: str) -> tuple[int, int]:
    """`3:0` -> (3, 0); `0:9` -> (0, 9) (killed by signal 9)."""
    code, sep, signal = text.strip().partition(":")
    if not code.isdigit() or (sep and not signal.isdigit()):
        raise ValueError(f"bad ExitCode {text!r}")
    return int(code), int(signal or 0)


def normalize_state(state: str) -> str:
    """`CANCELLED by 0` -> `CANCELLED`, `COMPLETED+` -> `COMPLETED` (first word, `+` stripped).

    "CANCELLED by 0" turns into plain "CANCELLED" after a slurmctld restart
    (slurm-notes.md): only the first word is ever compared.
    """
    words = state.split()
    return words[0].rstrip("+").upper() if words else ""


# Slurm job states after which an element can no longer run: scancel has nothing left to stop.
# (PREEMPTED too: arrays go out with --no-requeue, so Slurm never queues a preempted element again.)
SLURM_FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                         "PREEMPTED", "BOOT_FAIL", "DEADLINE", "REVOKED"})


def slurm_final(state_text: str | None) -> bool:
    """Whether a recorded Slurm state ("CANCELLED by 0", "COMPLETED", ...) is one an element never leaves."""
    return bool(state_text) and normalize_state(state_text) in SLURM_FINAL


def _columns(line: str, fields: Sequence[str]) -> dict[str, str] | None:
    values = line.split("|")
    if len(values) == len(fields) + 1 and values[-1] == "":
        values.pop()  # `--parsable` (not 2) ends every line with "|"
    if len(values) > len(fields) and fields[-1] in ("Comment", "JobName"):
        # free text last: a "|" inside it must not shift the other columns
        values = values[: len(fields) - 1] + ["|".join(values[len(fields) - 1 :])]
    if len(values) != len(fields):
        return None
    return dict(zip(fields, values))


def parse_line(line: str, fields: Sequence[str] = FIELDS) -> list[SlurmRecord]:
    """One sacct line -> records (several for a pending range); raise ValueError if malformed."""
    row = _columns(line, fields)
    if row is None:
        raise ValueError(f"expected {len(fields)} fields separated by '|'")
    if not row.get("State", "").strip():
        raise ValueError("empty State")
    match = _JOB_ID.match(row["JobID"].strip())
    if not match:
        raise ArrayIdError(f"not a Slurm job id: {row['JobID']!r}")
    exit_code, signal = parse_exit_code(row.get("ExitCode", "0:0") or "0:0")
    base = SlurmRecord(
        job_id=row["JobID"].strip(),
        array_job_id=int(match.group(1)),
        array_task_id=None,
        raw_id=row.get("JobIDRaw", "").strip(),
        name=row.get("JobName", ""),
        partition=row.get("Partition", "").strip(),
        state=normalize_state(row["State"]),
        state_text=row["State"].strip(),
        exit_code=exit_code,
        signal=signal,
        node_list=row.get("NodeList", "").strip(),
        submit=parse_time(row.get("Submit", "")),
        start=parse_time(row.get("Start", "")),
        end=parse_time(row.get("End", "")),
        comment=row.get("Comment", ""),
        step=match.group(3),
    )
    task = match.group(2)
    if task is None:
        return [base]
    if not task.startswith("["):
        return [replace(base, array_task_id=int(task))]
    return [
        replace(base, job_id=f"{array_id}_{t}", array_task_id=t, pending_range=True)
        for array_id, t in expand_array_id(base.job_id)
    ]


def iter_records(text: str, fields: Sequence[str] = FIELDS) -> Iterator[SlurmRecord]:
    """Every record of a sacct output; empty and malformed lines are logged and skipped."""
    missing = [f for f in REQUIRED if f not in fields]
    if missing:
        raise ValueError(f"sacct fields must include {', '.join(missing)}")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            log.warning("sacct output line %d is empty; skipped", number)
            continue
        try:
            yield from parse_line(line, fields)
        except ValueError as e:  # ArrayIdError is a ValueError too
            log.warning("sacct output line %d skipped (%s): %r", number, e, line)


def parse_sacct(text: str, fields: Sequence[str] = FIELDS) -> list[SlurmRecord]:
    """All records of a `sacct -X --parsable2 --noheader --format=<fields>` output."""
    return list(iter_records(text, fields))


def latest_by_element(records: Sequence[SlurmRecord]) -> dict[tuple[int, int], SlurmRecord]:
    """Array elements keyed by (array id, task id); a started row beats a pending-range row."""
    result: dict[tuple[int, int], SlurmRecord] = {}
    for record in records:
        if not record.is_element:
            continue
        key = (record.array_job_id, record.array_task_id)
        old = result.get(key)
        if old is None or old.pending_range or not record.pending_range:
            result[key] = record
    return result
