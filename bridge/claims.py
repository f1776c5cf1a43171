"""Claims whose sbatch outcome is unknown: kept until a look-up of their tag is sure.

An sbatch that timed out or lost its SSH connection may have been accepted,
and slurmctld may take the job only after sbatch gave up; sacct lags squeue by
1-3 s. So a claim is never released on one look-up: it goes back to the queue
only after `[claims] misses` consecutive look-ups in which squeue *and* sacct
both answered "not there", spanning at least `grace` seconds (after Toil's
N-misses rule). A look-up where either source failed proves nothing and starts
the count again. A claim unknown for longer than `stuck_after` is reported once
(bridge.cycle shows the stuck ones on every cycle). The counts live in the
database (bridge.models.ClaimLookup), so a restarted daemon or a `beat-bridge
submit` run by hand keeps counting where the last one stopped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.config import ClaimRule, LostRule
from bridge.history import locked
from bridge.models import ClaimLookup, utcnow

log = logging.getLogger(__name__)


def may_release(misses: int, first_miss: datetime | None, now: datetime, rule: ClaimRule | LostRule) -> bool:
    """Whether a run of `misses` sure "not there" answers, the first at `first_miss`, proves the claim lost.

    The same rule judges a recorded split whose array Slurm has forgotten ([reconcile], bridge.reconcile).
    """
    return (misses >= rule.misses and first_miss is not None
            and now - first_miss >= timedelta(seconds=rule.grace))


def note_unknown(session: Session, tag: str, error: str, now: datetime | None = None) -> None:
    """Remember that the tag's sbatch outcome is unknown (the look-ups start from here)."""
    with locked(session):
        _row(session, tag, now).last_error = error


def note_miss(session: Session, tag: str, rule: ClaimRule, now: datetime | None = None) -> bool:
    """Count one look-up where both sources surely did not know the tag; whether to release it now."""
    now = now or utcnow()
    with locked(session):
        row = _row(session, tag, now)
        row.misses += 1
        row.first_miss = row.first_miss or now
        release = may_release(row.misses, row.first_miss, now, rule)
        misses, first = row.misses, row.first_miss
    log.info("tag %s: not on Slurm (miss %d of %d, %.0f of %.0f s)", tag, misses, rule.misses,
             (now - first).total_seconds(), rule.grace)
    return release


def note_failed_lookup(session: Session, tag: str, error: str, now: datetime | None = None) -> None:
    """A look-up that proved nothing: the run of misses starts again."""
    with locked(session):
        row = _row(session, tag, now)
        row.misses, row.first_miss, row.last_error = 0, None, error


def forget(session: Session, tag: str) -> None:
    """The tag's outcome is known (recorded or released): no more look-ups."""
    with locked(session):
        row = session.get(ClaimLookup, tag)
        if row is not None:
            session.delete(row)


def prune(session: Session, claimed: list[str]) -> None:
    """Forget look-ups of tags no split is claimed under any more (recorded, released or deleted elsewhere)."""
    gone = set(session.scalars(select(ClaimLookup.tag))) - set(claimed)  # read first: most cycles have none
    session.rollback()
    if gone:
        with locked(session):
            for tag in gone:
                row = session.get(ClaimLookup, tag)
                if row is not None:
                    session.delete(row)


def newly_stuck(session: Session, rule: ClaimRule, now: datetime | None = None) -> list[str]:
    """Tags unknown for longer than `stuck_after` and not yet reported: marked reported, logged once."""
    now = now or utcnow()
    overdue = (ClaimLookup.stuck.is_(False), ClaimLookup.since <= now - timedelta(seconds=rule.stuck_after))
    if session.scalar(select(ClaimLookup.tag).where(*overdue).limit(1)) is None:
        session.rollback()  # the usual cycle: nothing to report, no write transaction
        return []
    with locked(session):
        rows = session.scalars(select(ClaimLookup).where(*overdue)).all()
        for row in rows:
            row.stuck = True
            log.error("submission %s is stuck: sbatch's outcome unknown for %.0f s (%s); its splits stay "
                      "claimed until squeue or sacct can say whether Slurm has it", row.tag,
                      (now - row.since).total_seconds(), row.last_error or "no look-up has answered")
        tags = [row.tag for row in rows]
    return tags


def stuck(session: Session) -> list[str]:
    """Every tag reported stuck whose outcome is still unknown."""
    return list(session.scalars(select(ClaimLookup.tag).where(ClaimLookup.stuck.is_(True))
                                .order_by(ClaimLookup.tag)))


def _row(session: Session, tag: str, now: datetime | None) -> ClaimLookup:
    row = session.get(ClaimLookup, tag)
    if row is None:
        row = ClaimLookup(tag=tag, since=now or utcnow(), misses=0, stuck=False)
        session.add(row)
    return row
