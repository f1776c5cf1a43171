"""One reconcile run: read Slurm, then the database, judge (bridge.reconcile), keep the miss counts; and --apply.

Slurm is read with two calls, squeue first: one `squeue -t all --me` (every job
of the bridge's Slurm user that slurmctld knows, with its name) and one
`sacct -X` over a UTC window (`--since` ago, or earlier to cover the oldest
submitted split). If either fails the run is an error and judges nothing: a
failed call is never "not there" (so never lost) and never "clean"; the runs of
misses start again. `apply` does only what is safe: scancel the orphans (this
deployment's, by id), and queue a lost split again by a guarded transition, so
that the next cycle claims and submits it afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from bridge import reconcile
from bridge.config import BridgeConfig
from bridge.errors import CommandError
from bridge.history import locked
from bridge.models import AccountingSnapshot, Block, ClaimLookup, Job, JobSplit, ReconcileMiss, utcnow
from bridge.reconcile_facts import SUBMITTED, Claim, Facts, Misses, ReconcileReport, SnapshotRow, SplitRow
from bridge.sacct import slurm_final
from bridge.slurm_client import SlurmClient
from bridge.submission_db import requeue_lost
from bridge.tags import parse_tag

log = logging.getLogger(__name__)

DEFAULT_SINCE = timedelta(days=7)
MARGIN = timedelta(minutes=5)  # sacct's window opens this long before the oldest submitted split
IN_CHUNK = 500  # values per SQL IN (...)


def check(session: Session, client: SlurmClient, config: BridgeConfig, now: datetime | None = None,
          since: timedelta = DEFAULT_SINCE) -> ReconcileReport:
    """Compare the database with squeue and sacct; the report (its `error` set when Slurm could not be read)."""
    now = now or utcnow()
    start = now - since
    try:
        read_at = utcnow()
        jobs = client.jobs()  # before any database read: see bridge.reconcile
        start = reconcile.window(now, since, _submitted(session), MARGIN)
        accounted = client.accounted(start)
    except CommandError as e:
        _forget_misses(session)
        return ReconcileReport(config.deployment, start, error=_one_line(e))
    facts = Facts(config.deployment, read_at, now, start, jobs, accounted, _splits(session),
                  _snapshots(session, start, _active_tags(jobs)), _claims(session), _misses(session))
    session.rollback()
    try:
        facts = replace(facts, confirmed=_look_up(client, reconcile.unseen(facts)))
    except CommandError as e:
        _forget_misses(session)
        return ReconcileReport(config.deployment, start, error=_one_line(e))
    report = reconcile.judge(facts, config.reconcile, config.claims.stuck_after)
    _store_misses(session, report.misses, now, had_rows=bool(facts.misses))
    log.debug("reconcile: %s", report.checked)
    return report


def apply(session: Session, client: SlurmClient, report: ReconcileReport) -> list[str]:
    """The safe actions: scancel each orphan, queue each lost split again; one line per action."""
    done: list[str] = []
    orphans = report.of("orphan")
    if orphans:
        client.cancel(d.slurm_id for d in orphans if d.slurm_id)
        done += [f"scancel {d.slurm_id} ({d.tag}): sent" for d in orphans if d.slurm_id]
    for d in report.of("lost"):
        if d.split_id is None or d.slurm_id is None:
            continue
        array_id = d.slurm_id.split("_")[0]
        reason = f"lost on Slurm: neither squeue nor sacct knows array {array_id} (beat-bridge reconcile)"
        if requeue_lost(session, d.split_id, array_id, reason):
            _drop_misses(session, [d.split_id])
            done.append(f"split {d.split_id} (array {array_id}): queued again, the next cycle submits it "
                        "under a new tag")
        else:
            done.append(f"split {d.split_id} (array {array_id}): changed meanwhile, left alone")
    report.applied += done
    return done


class _Element(NamedTuple):
    """A split as SlurmClient.status reads it."""

    slurm_job_id: str
    slurm_element_id: str
    submit_time: datetime | None


def _look_up(client: SlurmClient, splits: Sequence[SplitRow]) -> frozenset[str]:
    """The array ids squeue -j or sacct -j (any user's jobs) still know, of splits the listings missed.

    The poll's own status call: squeue by id, sacct for what it forgot. Usually
    nothing to ask. CommandError when either source failed: a miss must be sure.
    """
    elements = [_Element(s.array_id, s.element_id or f"{s.array_id}_0", s.submitted)
                for s in splits if s.array_id and s.array_id.isdigit()]
    if not elements:
        return frozenset()
    view = client.status(elements)
    if view.squeue_error is not None or view.sacct_error is not None:
        which = "squeue -j" if view.squeue_error is not None else "sacct -j"
        raise CommandError([which.split()[0]], 1, "", "", f"{which} of {len(elements)} unseen arrays failed: "
                           f"{view.squeue_error or view.sacct_error}")
    found = {str(r.array_job_id) for r in (*view.records.values(), *view.bare)}
    return frozenset(found | {element.rpartition("_")[0] for element in view.pending})


def _one_line(e: CommandError) -> str:
    return " ".join(f"{e}; nothing was judged".split())


# --- the database's side ----------------------------------------------------------------------


def _submitted(session: Session) -> list[datetime]:
    """The oldest submit time of a split that could be lost (one value, or none)."""
    oldest = session.scalar(select(func.min(JobSplit.submit_time)).where(
        JobSplit.status.in_(sorted(SUBMITTED)), JobSplit.slurm_job_id.is_not(None)))
    session.rollback()
    return [oldest] if oldest is not None else []


def _splits(session: Session) -> list[SplitRow]:
    """Every split with a tag or an array id, and the experiment and block it belongs to."""
    rows = session.execute(
        select(JobSplit.id, JobSplit.status, Block.experiment_id, Block.name, JobSplit.submission_tag,
               JobSplit.slurm_job_id, JobSplit.slurm_element_id, JobSplit.slurm_state, JobSplit.submit_time,
               JobSplit.end_date)
        .join(JobSplit.job).join(Job.block)
        .where(or_(JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_not(None)))
        .order_by(JobSplit.id)).all()
    return [SplitRow(r[0], r[1].value, *r[2:]) for r in rows]


def _snapshots(session: Session, start: datetime, tags: Sequence[str]) -> list[SnapshotRow]:
    """Snapshots of splits that ended in the window, and those of the tags Slurm still runs (any age)."""
    s = AccountingSnapshot
    found = {row.id: row for row in session.scalars(select(s).where(
        or_(s.end >= start, and_(s.end.is_(None), s.first_seen >= start))))}
    for i in range(0, len(tags), IN_CHUNK):
        found.update({row.id: row for row in session.scalars(
            select(s).where(s.submission_tag.in_(tags[i:i + IN_CHUNK])))})
    return [SnapshotRow(r.split_id, r.split_status, r.experiment_id, r.block_name, r.submission_tag,
                        r.element_id, r.state, r.status == "complete", r.first_seen)
            for r in sorted(found.values(), key=lambda r: r.id)]


def _active_tags(jobs: Sequence) -> list[str]:
    """Names of the active Slurm jobs that are tags of a bridge (ours or older): those a snapshot may know."""
    return sorted({r.name for r in jobs if not slurm_final(r.state_text) and parse_tag(r.name) is not None})


def _claims(session: Session) -> list[Claim]:
    """Splits claimed and never recorded, one Claim per tag, with what the claim look-ups know of it."""
    rows = session.execute(
        select(JobSplit.submission_tag, JobSplit.id, Block.experiment_id, Block.name, ClaimLookup.since,
               ClaimLookup.stuck)
        .join(JobSplit.job).join(Job.block).outerjoin(ClaimLookup, ClaimLookup.tag == JobSplit.submission_tag)
        .where(JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_(None))
        .order_by(JobSplit.submission_tag, JobSplit.id)).all()
    by_tag: dict[str, Claim] = {}
    for tag, split_id, experiment_id, block, since, reported in rows:
        old = by_tag.get(tag)
        ids = (old.split_ids if old else ()) + (split_id,)
        by_tag[tag] = Claim(tag, ids, experiment_id, block, since, bool(reported))
    return list(by_tag.values())


def _misses(session: Session) -> dict[int, Misses]:
    return {r.split_id: Misses(r.array_id, r.misses, r.first_miss) for r in session.scalars(select(ReconcileMiss))}


def _store_misses(session: Session, counts: dict[int, Misses], now: datetime, had_rows: bool) -> None:
    """Keep this run's counts: one row per split missed now, none for the others (a run that saw it ends its run)."""
    if not counts and not had_rows:
        return  # the usual run: nothing missing, no write transaction
    with locked(session):
        session.execute(delete(ReconcileMiss))
        session.add_all(ReconcileMiss(split_id=split_id, array_id=m.array_id, misses=m.misses,
                                      first_miss=m.first_miss, last_miss=now) for split_id, m in counts.items())


def _forget_misses(session: Session) -> None:
    """A run that could not read Slurm proves nothing: every run of misses starts again."""
    session.rollback()
    if session.scalar(select(func.count()).select_from(ReconcileMiss)):
        with locked(session):
            session.execute(delete(ReconcileMiss))


def _drop_misses(session: Session, split_ids: list[int]) -> None:
    with locked(session):
        session.execute(delete(ReconcileMiss).where(ReconcileMiss.split_id.in_(split_ids)))
