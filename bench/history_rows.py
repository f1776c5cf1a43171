"""A long-lived bridge's history, generated in the database itself: state-history rows, results, audit snapshots.

Finished job and split rows are deleted (bridge.outcomes), so these three
tables are what grows. One INSERT ... SELECT per table over a row generator
(a recursive CTE on SQLite, generate_series on PostgreSQL): millions of rows
in seconds, not a Python loop.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

_HISTORY = ("INSERT INTO state_history (entity, entity_id, from_status, to_status, at, source) "
            "SELECT 'job_splits', -x, 'P', 'C', :now, 'bench' FROM {rows}")
_RESULTS = ("INSERT INTO results (status, stdout, timed_out, cancelled, creation_date) "
            "SELECT 0, 'ok', false, false, :now FROM {rows}")
_SNAPSHOTS = ("INSERT INTO accounting_snapshots (split_id, attempt, split_status, verdict, experiment_id, "
              "experiment_name, author, block_name, array_job_id, element_id, status, first_seen, attempts) "
              "SELECT -x, 1, 'C', 'done', -1, 'history', 'bench', 'b', 1, '1_' || x, 'done', :now, 1 FROM {rows}")


def _rows(dialect: str, count: int) -> tuple[str, str]:
    """(prefix, FROM clause) generating x = 1..count."""
    if dialect == "postgresql":
        return "", f"generate_series(1, {int(count)}) AS g(x)"
    return f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < {int(count)}) ", "g"


def add_history(session: Session, transitions: int, results: int, snapshots: int) -> None:
    """Add that many state-history rows, results and accounting snapshots (ids negative: no real split's)."""
    dialect = session.get_bind().dialect.name
    now = datetime(2026, 1, 1)
    for statement, count in ((_HISTORY, transitions), (_RESULTS, results), (_SNAPSHOTS, snapshots)):
        prefix, rows = _rows(dialect, count)
        if dialect == "postgresql":
            sql = statement.format(rows=rows)
        else:  # SQLite: INSERT INTO t (...) WITH RECURSIVE ... SELECT ...
            head, select = statement.split(" SELECT ", 1)
            sql = f"{head} {prefix}SELECT {select.format(rows=rows)}"
        session.execute(text(sql), {"now": now})
    session.commit()
    if dialect == "postgresql":
        session.execute(text("ANALYZE"))
        session.commit()


def explain(session: Session, sql: str, params: dict | None = None) -> str:
    """The database's plan for one query (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL), one line each."""
    dialect = session.get_bind().dialect.name
    prefix = "EXPLAIN " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    rows = session.execute(text(prefix + sql), params or {}).all()
    return "; ".join(str(row[-1]) for row in rows)
