"""Errors that come from one job's own data: never the daemon's end, and the job's on the third cycle.

Splitting a job or writing its spool files reads only that job's data
(declaration, parameters, values rendered into its script). An unexpected
error there (a TypeError on a corrupted row, a RecursionError on absurd
nesting) is the job's: it is logged and the job is left for the next cycle;
when it repeats on `STRIKES` cycles the job fails with a system error naming
the cause. Errors of the database, Slurm or the disk are never a job's: they
propagate, the cycle fails and the loop backs off (bridge.cycle, poller.loop).
The count is this process's: a restarted daemon gives a job its strikes back.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

STRIKES = 3
_counts: dict[int, int] = {}


def is_job_data_error(error: BaseException) -> bool:
    """Whether an error raised while handling one job can only come from that job's data."""
    return isinstance(error, Exception) and not isinstance(error, (SQLAlchemyError, OSError, BridgeError))


def describe(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, RecursionError):
        text = "its data is nested too deeply"
    return f"{type(error).__name__}: {text[:500]}"


def strike(job_id: int, what: str, error: BaseException) -> str | None:
    """Count one strike against the job; the system error to fail it with on the last, else None."""
    count = _counts.get(job_id, 0) + 1
    _counts[job_id] = count
    message = f"{what}: {describe(error)}"
    if count < STRIKES:
        log.error("%s (cycle %d of %d before the job fails)", message, count, STRIKES, exc_info=error)
        return None
    _counts.pop(job_id, None)
    log.error("%s (cycle %d of %d): the job fails", message, count, STRIKES)
    return f"{message} (on {count} cycles in a row)"


def clear(job_id: int) -> None:
    """The job got past the step that failed: its strikes are forgotten."""
    _counts.pop(job_id, None)
