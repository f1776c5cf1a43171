"""The audit's figures: pure sums over accounting snapshots, grouped by one BEAT or Slurm name.

An `Element` is one settled array element as its snapshot has it
(bridge.models_audit); `audit(elements, by)` groups them and gives each group,
and the whole period, the figures `beat-bridge audit` prints:

- core-hours: AllocCPUS x Elapsed; wasted: the core-hours of elements Slurm did
  not end COMPLETED (FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, CANCELLED, ...);
- CPU efficiency: sum TotalCPU / sum core time; memory efficiency: sum of the
  batch step's MaxRSS / sum of the memory asked (ReqMem); time efficiency:
  sum Elapsed / sum Timelimit; each over the elements that have both figures;
- queue wait: Start - Submit of the elements that started (median, and p95
  by nearest rank);
- failures by reason ("FAILED exit 3", "TIMEOUT", "CANCELLED by root", ...).

An element without Slurm's figures (sacct never settled it) counts in
`elements` and `missing`, and in no sum. Every figure is None where it has no
denominator: an empty group divides nothing.
"""

from __future__ import annotations

import math
import pwd
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from statistics import median
from typing import NamedTuple

DIMENSIONS = ("experiment", "block", "author", "queue", "mapping", "partition", "algorithm", "node")
COMPLETED = "COMPLETED"


class Element(NamedTuple):
    """One settled array element: BEAT's names and Slurm's figures (None: not known).

    A named tuple: an audit makes one per snapshot row, 100,000 of them in a big period."""

    element_id: str
    experiment_id: int
    experiment_name: str
    block_name: str
    author: str
    queue: str | None
    partition: str | None
    algorithm: str | None
    node: str | None
    split_status: str  # C, F or L: how BEAT ended it
    verdict: str | None  # the poller's reading: done, failed:out_of_memory, failed:timed_out, ...
    state: str | None  # as sacct printed it: "CANCELLED by 0"
    exit_code: str | None  # "N:S"
    alloc_cpus: int | None
    req_mem_mb: int | None
    max_rss_kb: int | None
    total_cpu_s: float | None
    elapsed_s: int | None
    timelimit_min: int | None
    submit: datetime | None  # the times are None when loaded without them (audit_query.load)
    start: datetime | None
    end: datetime | None
    wait_s: float | None  # Start - Submit, seconds (never below 0); None if it never started
    mapping_version: str | None = None  # the queue mapping its array rendered with (bridge.queue_settings)

    @property
    def core_seconds(self) -> float | None:
        if self.alloc_cpus is None or self.elapsed_s is None:
            return None
        return float(self.alloc_cpus * self.elapsed_s)


def wait_seconds(submit: datetime | None, start: datetime | None) -> float | None:
    """Start - Submit in seconds, never below 0; None if it never started."""
    if submit is None or start is None:
        return None
    return max(0.0, (start - submit).total_seconds())


def group_key(element: Element, by: str) -> str:
    """The element's name in the `by` dimension ("-" where it has none)."""
    if by == "experiment":
        return f"{element.experiment_id} {element.experiment_name}"
    if by == "block":
        return f"{element.experiment_id} {element.experiment_name}/{element.block_name}"
    if by == "mapping":  # which version of the admins' mapping ran it: an edit's before and after
        return f"{element.queue or '-'} {element.mapping_version or '-'}"
    value = {"author": element.author, "queue": element.queue, "partition": element.partition,
             "algorithm": element.algorithm, "node": element.node}.get(by, "")
    return value or "-"


@lru_cache(maxsize=1024)
def _user(uid: str) -> str:
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError, OverflowError):
        return f"uid {uid}"


@lru_cache(maxsize=4096)
def failure_reason(state: str | None, exit_code: str | None, verdict: str | None = None) -> str | None:
    """Why Slurm did not end an element COMPLETED, in words; None when it did, or is not known.

    A FAILED element the poller judged killed for memory (slurmstepd's line in its stderr: Slurm 22.05
    without cgroups accounts a memory kill as FAILED 0:9) is OUT_OF_MEMORY, as sacct would say with cgroups.
    """
    if not state:
        return None
    words = state.split()
    first = words[0].rstrip("+")
    if first == COMPLETED:
        return None
    if first == "FAILED" and verdict == "failed:out_of_memory":
        return "OUT_OF_MEMORY"
    if first == "FAILED":
        code = (exit_code or "").split(":")
        if len(code) == 2 and code[1] not in ("", "0"):
            return f"FAILED signal {code[1]}"
        return f"FAILED exit {code[0] or '?'}"
    if first == "CANCELLED" and len(words) >= 3 and words[1] == "by":
        return f"CANCELLED by {_user(words[2])}"
    return first


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when there are none)."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


@dataclass
class _Sums:
    elements: int = 0
    completed: int = 0
    missing: int = 0
    core_s: float = 0.0
    wasted_core_s: float = 0.0
    cpu_used_s: float = 0.0
    cpu_core_s: float = 0.0
    rss_kb: float = 0.0
    req_kb: float = 0.0
    elapsed_s: float = 0.0
    limit_s: float = 0.0
    waits: list[float] = field(default_factory=list)
    failures: Counter = field(default_factory=Counter)

    def add(self, e: Element) -> None:
        self.elements += 1
        if e.state is None or e.core_seconds is None:
            self.missing += 1
        reason = failure_reason(e.state, e.exit_code, e.verdict)
        if reason is not None:
            self.failures[reason] += 1
        elif e.state is not None:
            self.completed += 1
        core = e.core_seconds
        if core is not None:
            self.core_s += core
            if reason is not None:
                self.wasted_core_s += core
            if e.total_cpu_s is not None:
                self.cpu_used_s += e.total_cpu_s
                self.cpu_core_s += core
        if e.max_rss_kb is not None and e.req_mem_mb:
            self.rss_kb += e.max_rss_kb
            self.req_kb += e.req_mem_mb * 1024
        if e.elapsed_s is not None and e.timelimit_min:
            self.elapsed_s += e.elapsed_s
            self.limit_s += e.timelimit_min * 60
        wait = e.wait_s
        if wait is not None:
            self.waits.append(wait)

    def merge(self, other: _Sums) -> None:
        """Add another group's sums to these (the total is the groups' merge)."""
        for name in ("elements", "completed", "missing", "core_s", "wasted_core_s", "cpu_used_s", "cpu_core_s",
                     "rss_kb", "req_kb", "elapsed_s", "limit_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.waits.extend(other.waits)
        self.failures.update(other.failures)


@dataclass(frozen=True)
class Figures:
    """One group's audit figures (the whole period's when key is "total")."""

    key: str
    elements: int
    completed: int
    not_completed: int  # ended otherwise than COMPLETED in Slurm (failed, timed out, cancelled, ...)
    missing: int  # without Slurm's figures
    core_hours: float
    wasted_core_hours: float
    cpu_efficiency: float | None
    memory_efficiency: float | None
    time_efficiency: float | None
    wait_median_s: float | None
    wait_p95_s: float | None
    failures: dict[str, int]


def _figures(key: str, s: _Sums) -> Figures:
    waits = sorted(s.waits)
    return Figures(
        key=key, elements=s.elements, completed=s.completed, not_completed=sum(s.failures.values()), missing=s.missing,
        core_hours=s.core_s / 3600, wasted_core_hours=s.wasted_core_s / 3600,
        cpu_efficiency=_ratio(s.cpu_used_s, s.cpu_core_s), memory_efficiency=_ratio(s.rss_kb, s.req_kb),
        time_efficiency=_ratio(s.elapsed_s, s.limit_s), wait_median_s=median(waits) if waits else None,
        wait_p95_s=percentile(waits, 0.95), failures=dict(sorted(s.failures.items(), key=lambda kv: (-kv[1], kv[0]))),
    )


@dataclass(frozen=True)
class Audit:
    """A period's figures: per group (sorted by core-hours, largest first) and in total."""

    by: str
    since: datetime
    until: datetime
    groups: list[Figures]
    total: Figures


def audit(elements: list[Element], by: str, since: datetime, until: datetime) -> Audit:
    """Group the elements by `by` (one of DIMENSIONS) and sum each group's figures."""
    if by not in DIMENSIONS:
        raise ValueError(f"--by {by!r}: valid are {', '.join(DIMENSIONS)}")
    sums: dict[str, _Sums] = {}
    total = _Sums()
    for element in elements:
        key = group_key(element, by)
        group = sums.get(key)
        if group is None:
            group = sums[key] = _Sums()
        group.add(element)
    for group in sums.values():
        total.merge(group)
    groups = sorted((_figures(k, s) for k, s in sums.items()), key=lambda f: (-f.core_hours, f.key))
    return Audit(by, since, until, groups, _figures("total", total))
