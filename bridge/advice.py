"""Right-sizing advice: each queue's limits against what its elements used (pure; never applied).

Per queue and algorithm: the 95th percentile (nearest rank) of the batch
step's MaxRSS and of Elapsed, against the queue's `memory_limit` (MB) and
`time_limit` (minutes) in queues.toml. Per queue, a proposed limit: the p95
with HEADROOM, rounded up (memory to 50 MB, time to the minute), with how many
of the period's elements it would have killed. It is suggested when it is at
most TIGHTEN of today's limit and at least MIN_SAMPLE elements back it; when
more than RAISE_SHARE of a queue's elements were killed by the limit itself
(OUT_OF_MEMORY, TIMEOUT), raising it is suggested instead. The queues.toml
lines are printed for an admin to apply by hand, or not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from bridge.audit import Element, failure_reason, percentile
from bridge.queues_config import QueueConfig

HEADROOM = 1.25
TIGHTEN = 0.8
MIN_SAMPLE = 5
RAISE_SHARE = 0.05
RAISE_BY = 1.5
MEMORY_STEP = 50  # MB


@dataclass(frozen=True)
class UsageRow:
    """One queue and algorithm: what its elements used against the queue's limits."""

    queue: str
    algorithm: str
    elements: int  # of the period, in this queue with this algorithm (the p95s are over those with figures)
    p95_rss_mb: float | None
    max_rss_mb: float | None
    memory_limit_mb: int | None
    p95_elapsed_min: float | None
    max_elapsed_min: float | None
    time_limit_min: int | None
    out_of_memory: int
    timed_out: int


@dataclass(frozen=True)
class Proposal:
    """A suggested queues.toml change of one limit of one queue."""

    queue: str
    key: str  # memory_limit | time_limit
    current: int
    proposed: int
    would_kill: int  # of the period's elements, those over the proposed limit
    elements: int
    why: str


@dataclass(frozen=True)
class Advice:
    rows: list[UsageRow]
    proposals: list[Proposal]
    unknown_queues: list[str]  # in the snapshots, not in queues.toml any more

    def toml(self) -> str:
        """The suggested queues.toml lines, with why as comments (empty: nothing to change)."""
        lines: list[str] = []
        for queue in dict.fromkeys(p.queue for p in self.proposals):
            lines.append(f"[queues.{queue}]")
            for p in (p for p in self.proposals if p.queue == queue):
                lines.append(f"{p.key} = {p.proposed}  # was {p.current}: {p.why}")
            lines.append("")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "proposals": [asdict(p) for p in self.proposals],
                "unknown_queues": self.unknown_queues, "toml": self.toml()}


def _state(element: Element) -> str:
    """TIMEOUT, OUT_OF_MEMORY (a memory kill accounted as FAILED too: bridge.audit.failure_reason), ..."""
    return failure_reason(element.state, element.exit_code, element.verdict) or ""


def _mb(kb: int) -> float:
    return kb / 1024


def _usage_row(queue: str, algorithm: str, elements: list[Element], limits: QueueConfig | None) -> UsageRow:
    rss = sorted(_mb(e.max_rss_kb) for e in elements if e.max_rss_kb is not None)
    minutes = sorted(e.elapsed_s / 60 for e in elements if e.elapsed_s is not None)
    return UsageRow(
        queue=queue, algorithm=algorithm, elements=len(elements),
        p95_rss_mb=percentile(rss, 0.95), max_rss_mb=rss[-1] if rss else None,
        memory_limit_mb=limits.memory_limit if limits else None,
        p95_elapsed_min=percentile(minutes, 0.95), max_elapsed_min=minutes[-1] if minutes else None,
        time_limit_min=limits.time_limit if limits else None,
        out_of_memory=sum(_state(e) == "OUT_OF_MEMORY" for e in elements),
        timed_out=sum(_state(e) == "TIMEOUT" for e in elements),
    )


def _proposal(queue: str, key: str, current: int, used: list[float], killed: int, total: int,
              step: int, unit: str) -> Proposal | None:
    """The proposal for one limit, or None when today's is right (or too few elements say otherwise)."""
    if total and killed / total > RAISE_SHARE:
        proposed = int(math.ceil(current * RAISE_BY / step) * step)
        return Proposal(queue, key, current, proposed, 0, total,
                        f"{killed} of {total} elements were killed by this limit: raise it")
    if len(used) < MIN_SAMPLE:
        return None
    ordered = sorted(used)
    p95 = percentile(ordered, 0.95) or 0.0
    proposed = max(step, int(math.ceil(p95 * HEADROOM / step) * step))
    if proposed > current * TIGHTEN:
        return None
    would_kill = sum(value > proposed for value in ordered)
    return Proposal(queue, key, current, proposed, would_kill, len(ordered),
                    f"p95 {p95:.0f} {unit} over {len(ordered)} elements; {would_kill} of them would have been killed")


def advise(elements: list[Element], queues: Mapping[str, QueueConfig]) -> Advice:
    """Usage per queue and algorithm, and the limits worth changing (see the module)."""
    by_pair: dict[tuple[str, str], list[Element]] = {}
    for e in elements:
        by_pair.setdefault((e.queue or "-", e.algorithm or "-"), []).append(e)
    rows = [_usage_row(q, a, es, queues.get(q)) for (q, a), es in sorted(by_pair.items())]
    proposals: list[Proposal] = []
    unknown: list[str] = []
    for queue in sorted({q for q, _ in by_pair}):
        members = [e for (q, _), es in by_pair.items() if q == queue for e in es]
        limits = queues.get(queue)
        if limits is None:
            unknown.append(queue)
            continue
        memory = [_mb(e.max_rss_kb) for e in members if e.max_rss_kb is not None]
        minutes = [e.elapsed_s / 60 for e in members if e.elapsed_s is not None]
        oom = sum(_state(e) == "OUT_OF_MEMORY" for e in members)
        timeouts = sum(_state(e) == "TIMEOUT" for e in members)
        for found in (_proposal(queue, "memory_limit", limits.memory_limit, memory, oom, len(members),
                                MEMORY_STEP, "MB"),
                      _proposal(queue, "time_limit", limits.time_limit, minutes, timeouts, len(members), 1, "min")):
            if found is not None:
                proposals.append(found)
    return Advice(rows, proposals, unknown)
