"""The audit's input: a period's accounting snapshots from the database, and sacct for what they lack.

`load` reads only the columns an audit uses (plain rows, no ORM objects: a
100,000-row period stays well under a second on SQLite). An element belongs to
the period in which it ended (its End, else when its snapshot was made).
`fill_missing` asks sacct, bounded (one call per USAGE_CHUNK elements, at most
FILL_LIMIT elements), for the figures of elements whose snapshot never got
them; it writes nothing (the daemon owns the snapshots).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bridge.audit import Element
from bridge.errors import CommandError
from bridge.models_audit import AccountingSnapshot as S
from bridge.slurm_client import USAGE_CHUNK, SlurmClient

log = logging.getLogger(__name__)

FILL_LIMIT = 10 * USAGE_CHUNK  # elements asked of sacct by one audit: 10 calls at most
WINDOW_MARGIN = timedelta(minutes=5)
_COLUMNS = (S.element_id, S.experiment_id, S.experiment_name, S.block_name, S.author, S.queue_name, S.partition,
            S.algorithm, S.node_list, S.split_status, S.state, S.exit_code, S.alloc_cpus, S.req_mem_mb,
            S.max_rss_kb, S.total_cpu_s, S.elapsed_s, S.timelimit_min, S.submit, S.start, S.end)


def load(session: Session, since: datetime, until: datetime, experiment_id: int | None = None) -> list[Element]:
    """The elements that ended in [since, until), of one experiment or all, oldest first."""
    ended = or_(and_(S.end.is_not(None), S.end >= since, S.end < until),
                and_(S.end.is_(None), S.first_seen >= since, S.first_seen < until))
    query = select(*_COLUMNS).where(ended)
    if experiment_id is not None:
        query = query.where(S.experiment_id == experiment_id)
    query = query.order_by(func.coalesce(S.end, S.first_seen), S.id)
    return [Element(*values) for values in session.execute(query)]


def lacking(element: Element) -> bool:
    """Whether the element's snapshot lacks Slurm's figures (state, CPUs or elapsed time)."""
    return element.state is None or element.alloc_cpus is None or element.elapsed_s is None


@dataclass
class Filled:
    """What fill_missing asked and found."""

    asked: int = 0
    found: int = 0
    sacct_calls: int = 0
    error: str | None = None


def fill_missing(elements: list[Element], client: SlurmClient, since: datetime) -> tuple[list[Element], Filled]:
    """The elements with sacct's figures put in where their snapshot has none (bounded; see the module)."""
    wanted = [i for i, e in enumerate(elements) if lacking(e)][:FILL_LIMIT]
    filled = Filled(asked=len(wanted))
    out = list(elements)
    for start in range(0, len(wanted), USAGE_CHUNK):
        chunk = wanted[start:start + USAGE_CHUNK]
        ids = sorted({elements[i].element_id for i in chunk})
        filled.sacct_calls += 1
        try:
            table = client.usage(ids, since - WINDOW_MARGIN)
        except CommandError as e:
            filled.error = str(e)
            log.warning("sacct for %d elements without figures failed: %s", len(ids), e)
            break
        for i in chunk:
            usage = table.lookup(elements[i].element_id)
            if usage is None:
                continue
            filled.found += 1
            out[i] = replace(
                elements[i], state=usage.state, exit_code=usage.exit_code,
                partition=usage.partition or elements[i].partition, node=usage.node_list,
                alloc_cpus=usage.alloc_cpus, req_mem_mb=usage.req_mem_mb, max_rss_kb=usage.max_rss_kb,
                total_cpu_s=usage.total_cpu_s, elapsed_s=usage.elapsed_s, timelimit_min=usage.timelimit_min,
                submit=usage.submit or elements[i].submit, start=usage.start or elements[i].start,
                end=usage.end or elements[i].end)
    return out, filled
