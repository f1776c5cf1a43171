"""`beat-bridge status`: what the daemon is doing, from its heartbeat and the split rows; no Slurm call.

`split_counts` and `experiment_counts` are one GROUP BY each; `describe` (pure)
turns them and the heartbeat (bridge.heartbeat) into one dict, `render` into
lines. The daemon counts as running while its heartbeat is younger than its
announced wait plus `stale_after` (by default STALE_INTERVALS x [poll]
max_interval plus one Slurm status timeout: a cycle waiting on a slow squeue
is not a dead daemon).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.heartbeat import Heartbeat
from bridge.models import ACTIVE_SPLIT, ClaimLookup, Experiment, ExperimentStatus, JobSplit
from bridge.values import printable

STALE_INTERVALS = 3
SPLIT_KINDS = ("waiting for submission", "being submitted", "queued on Slurm", "processing", "cancelling")


def split_counts(session: Session) -> dict[str, int]:
    """Active splits by what they wait for (SPLIT_KINDS), and stuck submissions: two small queries."""
    counts = dict.fromkeys(SPLIT_KINDS, 0)
    rows = session.execute(
        select(JobSplit.status, JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_not(None),
               func.count()).where(JobSplit.status.in_(sorted(ACTIVE_SPLIT)))
        .group_by(JobSplit.status, JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_not(None)))
    for status, tagged, submitted, n in rows:
        counts[_kind(status.value, bool(tagged), bool(submitted))] += n
    counts["stuck submissions"] = session.scalar(
        select(func.count()).select_from(ClaimLookup).where(ClaimLookup.stuck.is_(True))) or 0
    return counts


def _kind(status: str, tagged: bool, submitted: bool) -> str:
    if status == "P":
        return "processing"
    if status == "K":
        return "cancelling"
    return "queued on Slurm" if submitted else "being submitted" if tagged else "waiting for submission"


def experiment_counts(session: Session) -> dict[str, int]:
    """Live and cancelling experiments by status name."""
    wanted = [ExperimentStatus.SCHEDULED, ExperimentStatus.RUNNING, ExperimentStatus.CANCELLING]
    rows = session.execute(select(Experiment.status, func.count()).where(Experiment.status.in_(wanted))
                           .group_by(Experiment.status))
    counts = {s.name.lower(): 0 for s in wanted}
    counts.update({status.name.lower(): n for status, n in rows})
    return counts


def describe(beat: Heartbeat, splits: Mapping[str, int], experiments: Mapping[str, int], now: datetime,
             stale_after: float) -> dict[str, Any]:
    """The status as one dict: daemon (running or not, its last cycle), last error, Slurm, work in hand."""
    age = (now - beat.beat_at).total_seconds() if beat.beat_at else None
    running = age is not None and beat.stopped_at is None and age <= (beat.next_in_s or 0.0) + stale_after
    last_failed = beat.failures > 0
    return {
        "running": running,
        "daemon": {"host": beat.host, "pid": beat.pid, "last_cycle": _iso(beat.beat_at), "age_s": _round(age),
                   "stopped_at": _iso(beat.stopped_at),
                   "cycle_s": beat.cycle_s, "next_in_s": beat.next_in_s, "cycles": beat.cycles,
                   "stale_after_s": stale_after},
        "last_error": None if beat.last_error is None else {
            "text": beat.last_error, "at": _iso(beat.last_error_at), "failed_in_a_row": beat.failures,
            "backing_off_s": beat.next_in_s if last_failed else None},
        "slurm": {"answered_at": _iso(beat.slurm_answered_at), "calls": beat.slurm_calls,
                  "answered_last_poll": None if beat.slurm_answered_at is None or beat.beat_at is None
                  else beat.slurm_answered_at == beat.beat_at, "active": beat.active},
        "splits": dict(splits), "experiments": dict(experiments),
    }


def render(status: Mapping[str, Any]) -> list[str]:
    """The status in a few lines (times UTC)."""
    d = status["daemon"]
    if d["last_cycle"] is None:
        lines = ["no daemon running (never seen on this database)"]
    elif not status["running"]:
        stop = f"stopped cleanly at {d['stopped_at']} UTC, " if d["stopped_at"] else ""
        lines = [f"no daemon running ({stop}last seen {d['last_cycle']} UTC, {_ago(d['age_s'])}, "
                 f"pid {d['pid']} on {printable(d['host'] or '?')})"]
    else:
        lines = [f"daemon running: pid {d['pid']} on {printable(d['host'] or '?')}, {d['cycles']} cycles; "
                 f"last cycle ended {d['last_cycle']} UTC ({_ago(d['age_s'])}) after {d['cycle_s']:.2f} s, "
                 f"next in {d['next_in_s']:.1f} s"]
    error = status["last_error"]
    if error is not None:
        state = (f"{error['failed_in_a_row']} failed cycles in a row, backing off {error['backing_off_s']:.1f} s"
                 if error["failed_in_a_row"] else "recovered since")
        lines.append(f"last error ({state}), at {error['at']} UTC: {printable(error['text'])}")
    lines.append(_slurm(status["slurm"]))
    splits = status["splits"]
    lines.append("active splits: " + ", ".join(f"{splits[k]} {k}" for k in SPLIT_KINDS)
                 + f"; {splits.get('stuck submissions', 0)} submissions stuck")
    lines.append("experiments: " + ", ".join(f"{n} {name}" for name, n in status["experiments"].items()))
    return lines


def _slurm(slurm: Mapping[str, Any]) -> str:
    if slurm["answered_at"] is None:
        return "Slurm: not asked yet (no split was on Slurm during a cycle)"
    when = f"{slurm['answered_at']} UTC"
    if slurm["answered_last_poll"]:
        return f"Slurm: answered the last cycle's poll ({slurm['calls']} calls, {slurm['active']} active splits)"
    return f"Slurm: last answered at {when} (later cycles had nothing on Slurm, or failed: see the last error)"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat(sep=" ", timespec="seconds") if when is not None else None
