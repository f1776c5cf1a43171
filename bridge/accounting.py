"""Parse `sacct --parsable2 --noheader` *with steps* into one Usage per array element.

Without -X, sacct prints an element's allocation row (`4242_3`) and its step
rows (`4242_3.batch`, `4242_3.extern`, `4242_3.0`...). What each figure is read
from, and the traps of other tools it avoids (reportseff, snakemake's Slurm
efficiency report):

* MaxRSS of the element = the `.batch` step's MaxRSS (the allocation row has
  none). Not the maximum over steps (`.extern` is slurmstepd's own), not a sum
  of duplicate step rows, never multiplied by NTasks (MaxRSS is already the
  largest task's).
* TotalCPU, AllocCPUS, ReqMem, Timelimit, State, ExitCode from the allocation
  row: its TotalCPU already sums the steps (summing the steps again counts twice).
* A duplicate step row (a requeued element): the later row with an End wins.
* An element cancelled before it started has no row of its own: a pending
  range row `4242_[3-5]` (expanded) or a bare `4242` CANCELLED row stands for it.

sacct lags squeue: an element is `settled` only when its allocation row has an
End and its batch step too (or it never started). Recorded on Slurm 22.05:
tests/data/sacct_usage.txt.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime

from bridge.sacct import ArrayIdError, expand_array_id, normalize_state, parse_time

log = logging.getLogger(__name__)

USAGE_FIELDS: tuple[str, ...] = (
    "JobID", "JobIDRaw", "State", "ExitCode", "Partition", "Account", "QOS", "NodeList", "AllocCPUS",
    "ReqMem", "MaxRSS", "NTasks", "TotalCPU", "ElapsedRaw", "TimelimitRaw", "Submit", "Eligible", "Start", "End",
)
_UNITS = {"": 1, "K": 1, "M": 1024, "G": 1024**2, "T": 1024**3, "P": 1024**4}  # in KiB
_MEM = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)([cn]?)$")
_CPU = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Usage:
    """What sacct accounted for one array element (None: not printed, or not yet)."""

    element_id: str
    state: str  # as printed: "CANCELLED by 0"
    exit_code: str  # "N:S"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    node_list: str | None = None
    alloc_cpus: int | None = None
    req_mem_mb: int | None = None
    max_rss_kb: int | None = None  # the batch step's, KiB
    total_cpu_s: float | None = None
    elapsed_s: int | None = None
    timelimit_min: int | None = None
    submit: datetime | None = None
    eligible: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    batch_end: datetime | None = None  # the batch step's End (None: no batch row, or not ended yet)

    @property
    def settled(self) -> bool:
        """sacct has it all: End on the allocation row, and on the batch step unless it never started."""
        return self.end is not None and (self.start is None or self.batch_end is not None)


@dataclass
class UsageTable:
    """An output's elements, and the rows that stand for elements never started."""

    elements: dict[str, Usage]
    ranges: dict[str, Usage]  # from `J_[a-b]` rows, per element id
    cancelled_arrays: dict[int, Usage]  # bare `J` CANCELLED rows, per array id

    def lookup(self, element_id: str) -> Usage | None:
        """The element's usage: its own rows, else a range or bare row standing for it."""
        found = self.elements.get(element_id) or self.ranges.get(element_id)
        if found is not None:
            return found
        array = self.cancelled_arrays.get(int(element_id.partition("_")[0]))
        return replace(array, element_id=element_id) if array is not None else None


def kib(text: str, cpus: int | None = None) -> int | None:
    """`47324K` -> 47324; `1.5M` -> 1536; `100Mc` (per CPU, old sacct) times `cpus`; "" -> None."""
    match = _MEM.match(text.strip())
    if not match:
        return None
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if match.group(3) == "c" and cpus:
        value *= cpus
    return int(round(value))


def cpu_seconds(text: str) -> float | None:
    """sacct's TotalCPU: `00:02.568`, `01:02:03`, `1-02:03:04` -> seconds; "" -> None."""
    match = _CPU.match(text.strip())
    if not match:
        return None
    days, hours, minutes, seconds = match.groups()
    return ((int(days or 0) * 24 + int(hours or 0)) * 60 + int(minutes)) * 60 + float(seconds)


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def _text(text: str) -> str | None:
    return text.strip() or None


def _allocation(element_id: str, row: dict[str, str]) -> Usage:
    cpus = _int(row["AllocCPUS"])
    req = kib(row["ReqMem"], cpus)
    node = _text(row["NodeList"])
    return Usage(
        element_id=element_id, state=row["State"].strip(), exit_code=row["ExitCode"].strip(),
        partition=_text(row["Partition"]), account=_text(row["Account"]), qos=_text(row["QOS"]),
        node_list=None if node == "None assigned" else node, alloc_cpus=cpus,
        req_mem_mb=None if req is None else req // 1024, total_cpu_s=cpu_seconds(row["TotalCPU"]),
        elapsed_s=_int(row["ElapsedRaw"]), timelimit_min=_int(row["TimelimitRaw"]),
        submit=parse_time(row["Submit"]), eligible=parse_time(row["Eligible"]),
        start=parse_time(row["Start"]), end=parse_time(row["End"]),
    )


def _row(line: str) -> dict[str, str] | None:
    values = line.split("|")
    return dict(zip(USAGE_FIELDS, values)) if len(values) == len(USAGE_FIELDS) else None


def parse_usage(text: str) -> UsageTable:
    """Every element of a `sacct --format=<USAGE_FIELDS>` output (no -X); bad lines logged and skipped."""
    table = UsageTable({}, {}, {})
    batches: dict[str, tuple[int | None, datetime | None]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        row = _row(line) if line.strip() else None
        if row is None or not row["State"].strip():
            if line.strip():
                log.warning("sacct usage line %d skipped: %r", number, line)
            continue
        base, _, step = row["JobID"].strip().partition(".")
        try:
            ids = expand_array_id(base.partition("+")[0])
            parse_time(row["End"])
        except (ArrayIdError, ValueError) as e:
            log.warning("sacct usage line %d skipped (%s): %r", number, e, line)
            continue
        if step:
            if step == "batch" and ids[0][1] is not None and (parse_time(row["End"]) or base not in batches):
                batches[base] = (kib(row["MaxRSS"]), parse_time(row["End"]))  # later row with an End wins
            continue
        _add_allocation(table, base, ids, row)
    for element_id, (rss, end) in batches.items():
        if element_id in table.elements:
            table.elements[element_id] = replace(table.elements[element_id], max_rss_kb=rss, batch_end=end)
    return table


def _add_allocation(table: UsageTable, base: str, ids: list[tuple[int, int | None]], row: dict[str, str]) -> None:
    array_id, task = ids[0]
    if task is None:
        if normalize_state(row["State"]) == "CANCELLED":  # never-started elements of a cancelled array
            table.cancelled_arrays[array_id] = _allocation(base, row)
        return  # else an element's short-lived row without `_T` (slurm-notes.md): not an element
    if base.endswith("]"):
        for a, t in ids:
            table.ranges[f"{a}_{t}"] = _allocation(f"{a}_{t}", row)
        return
    table.elements[base] = _allocation(base, row)
