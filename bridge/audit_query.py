"""The audit's input: a period's accounting snapshots from the database, and sacct for what they lack.

`load` reads only the columns an audit uses, as plain rows (see its doc). An element belongs to
the period in which it ended (its End, else when its snapshot was made).
`fill_missing` asks sacct, bounded (one call per USAGE_CHUNK elements, at most
FILL_LIMIT elements), for the figures of elements whose snapshot never got
them; it writes nothing (the daemon owns the snapshots).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.orm import Session

from bridge.audit import Element, wait_seconds
from bridge.errors import CommandError
from bridge.models_audit import AccountingSnapshot as S
from bridge.slurm_client import USAGE_CHUNK, SlurmClient

log = logging.getLogger(__name__)

FILL_LIMIT = 10 * USAGE_CHUNK  # elements asked of sacct by one audit: 10 calls at most
WINDOW_MARGIN = timedelta(minutes=5)
_NAMES = ("element_id", "experiment_id", "experiment_name", "block_name", "author", "queue_name", "partition",
          "algorithm", "node_list", "split_status", "verdict", "state", "exit_code", "alloc_cpus", "req_mem_mb",
          "max_rss_kb", "total_cpu_s", "elapsed_s", "timelimit_min")
_TIMES = ("submit", "start", "end")  # then these, then the wait: Element's order
# Start - Submit in seconds, computed by the database: no time needs parsing for the figures.
_WAIT = {"sqlite": '(julianday("start") - julianday(submit)) * 86400.0',
         "postgresql": 'EXTRACT(EPOCH FROM ("start" - submit))'}
_PERIOD = ('(("end" IS NOT NULL AND "end" >= :since AND "end" < :until) '
           'OR ("end" IS NULL AND first_seen >= :since AND first_seen < :until))')


def _when(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _wait(value) -> float | None:
    return None if value is None else max(0.0, round(float(value), 3))


def load(session: Session, since: datetime, until: datetime, experiment_id: int | None = None,
         times: bool = True) -> list[Element]:
    """The elements that ended in [since, until), of one experiment or all, in the order they were recorded.

    Plain SQL with typed parameters and untyped results: the ORM's per-value
    processing of 100,000 rows costs a second on SQLite. Times come back as
    text there (parsed here) and as datetimes on PostgreSQL; with times=False
    they are not read at all (None), which the figures do not need.
    """
    dialect = session.get_bind().dialect.name
    columns = [f'"{c}"' for c in _NAMES] + [f'"{c}"' if times else "NULL" for c in _TIMES]
    sql = (f"SELECT {', '.join(columns)}, {_WAIT.get(dialect, _WAIT['postgresql'])}, mapping_version "
           f"FROM {S.__tablename__} WHERE {_PERIOD}"
           + (" AND experiment_id = :experiment" if experiment_id is not None else "") + " ORDER BY id")
    query = text(sql).bindparams(bindparam("since", type_=DateTime), bindparam("until", type_=DateTime))
    params = {"since": since, "until": until, "experiment": experiment_id}
    first_time = len(_NAMES)
    elements = []
    for values in session.execute(query, params):
        values = list(values)
        if times:
            for i in range(first_time, first_time + len(_TIMES)):
                values[i] = _when(values[i])
        values[-2] = _wait(values[-2])
        elements.append(Element._make(values))
    return elements


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
            out[i] = elements[i]._replace(
                state=usage.state, exit_code=usage.exit_code,
                partition=usage.partition or elements[i].partition, node=usage.node_list,
                alloc_cpus=usage.alloc_cpus, req_mem_mb=usage.req_mem_mb, max_rss_kb=usage.max_rss_kb,
                total_cpu_s=usage.total_cpu_s, elapsed_s=usage.elapsed_s, timelimit_min=usage.timelimit_min,
                submit=usage.submit or elements[i].submit, start=usage.start or elements[i].start,
                end=usage.end or elements[i].end, wait_s=wait_seconds(usage.submit, usage.start))
    return out, filled
