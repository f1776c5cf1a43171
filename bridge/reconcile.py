"""Where the database and Slurm disagree: four kinds of divergence, judged by pure rules (no I/O).

- **orphan**: an element pending or running on Slurm that the database does not
  account for: its name is a tag of *this* deployment that no split row and no
  accounting snapshot carries, or the database has it final (done, failed,
  cancelled) since before Slurm was read; a split done from its result may
  still run, waiting for its release, for LINGER seconds (bridge.handover).
  Arrays of another deployment, or whose name is not a tag of ours, are never
  reported (bridge.tags.ours).
- **lost**: a split queued or processing with an array id that neither squeue nor
  sacct knows (their listings, then a look-up by id), on `[reconcile] misses`
  runs in a row spanning `grace` seconds (bridge.claims.may_release, the claims'
  own rule). Until then it is *watched*.
- **divergent**: a final split whose Slurm final state says otherwise: done (C)
  but not COMPLETED (OUT_OF_MEMORY, FAILED, TIMEOUT...), or failed (F) but
  COMPLETED. A cancelled (L) split agrees with any final state.
- **stuck**: splits claimed under a tag and never recorded with an array id, past
  `[claims] stuck_after` (or already reported stuck by the submit cycle).

The facts (bridge.reconcile_run) are read Slurm first, database second: an
array squeue lists was claimed before sbatch, so its claim is in what the
database read sees; and a split the database made final only after squeue was
read is not an orphan of a race.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from bridge.claims import may_release
from bridge.config import LostRule
from bridge.handover import LINGER
from bridge.reconcile_facts import (
    FINAL,
    KINDS,
    SUBMITTED,
    Claim,
    Divergence,
    Facts,
    Misses,
    ReconcileReport,
    SnapshotRow,
    SplitRow,
)
from bridge.sacct import SlurmRecord, latest_by_element, normalize_state, slurm_final
from bridge.status import SplitStatus
from bridge.tags import ours, parse_tag

__all__ = ["KINDS", "judge", "orphans", "unseen", "lost_splits", "divergent", "stuck", "window"]

LINGERING = timedelta(seconds=LINGER + 2)  # a done split's element may run this long after (clock slack: 2 s)


def judge(facts: Facts, lost_rule: LostRule, stuck_after: float) -> ReconcileReport:
    """Every divergence the facts show, the splits to keep watching, and the miss counts to store."""
    report = ReconcileReport(facts.deployment, facts.window_start)
    report.divergences += orphans(facts)
    lost, report.watching, report.misses = lost_splits(facts, lost_rule)
    report.divergences += lost
    report.divergences += divergent(facts)
    report.divergences += stuck(facts, stuck_after)
    report.checked = {"slurm_jobs": len(facts.jobs), "accounted": len(facts.accounted),
                      "splits": len(facts.splits), "snapshots": len(facts.snapshots),
                      "claims": len(facts.claims), "watching": len(report.watching)}
    return report


# --- orphans ----------------------------------------------------------------------------------


def orphans(facts: Facts) -> list[Divergence]:
    """Active elements on Slurm the database does not account for (see the module)."""
    in_flight = {s.tag for s in facts.splits if s.tag and s.array_id is None} | {c.tag for c in facts.claims}
    known_tags = {s.tag for s in facts.splits if s.tag} | {s.tag for s in facts.snapshots if s.tag} | in_flight
    elements = _known_elements(facts)
    unknown: dict[int, list[SlurmRecord]] = {}
    found: list[Divergence] = []
    for record in facts.jobs:
        if slurm_final(record.state_text):
            continue
        if record.name not in known_tags:
            if ours(record.name, facts.deployment):
                unknown.setdefault(record.array_job_id, []).append(record)
            continue
        if record.name in in_flight:
            continue
        orphan = _known_but_active(record, elements.get(record.job_id), facts.read_at)
        if orphan is not None:
            found.append(orphan)
    for array_id, records in sorted(unknown.items()):
        states = ",".join(sorted({r.state for r in records}))
        found.append(Divergence("orphan", f"{len(records)} element(s) {states} on Slurm under a tag of this "
                                "deployment that no split or snapshot knows", tag=records[0].name,
                                slurm_id=str(array_id), slurm_state=states))
    return found


def _known_elements(facts: Facts) -> dict[str, SplitRow | SnapshotRow]:
    """Element id -> what the database has of it: the split row if there is one, else its snapshot."""
    elements: dict[str, SplitRow | SnapshotRow] = {s.element_id: s for s in facts.snapshots}
    elements.update({s.element_id: s for s in facts.splits if s.element_id})
    return elements


def _known_but_active(record: SlurmRecord, known: SplitRow | SnapshotRow | None,
                      read_at: datetime) -> Divergence | None:
    """An active element of a tag the database knows: an orphan if it is unknown, or final since before read_at."""
    ids = dict(tag=record.name, slurm_id=record.job_id, slurm_state=record.state)
    if known is None:
        return Divergence("orphan", f"{record.state} on Slurm, but not an element the database recorded under "
                          "its tag", **ids)
    status = known.status if isinstance(known, SplitRow) else known.split_status
    if status not in FINAL or known.settled is None or known.settled >= read_at:
        return None  # still active in BEAT too, or made final after squeue answered (a race, not a divergence)
    if status == SplitStatus.COMPLETED.value and record.state == "RUNNING" and known.settled >= read_at - LINGERING:
        return None  # done from its result, waiting for its release (bridge.handover): it ends within LINGER
    return Divergence("orphan", f"{SplitStatus(status).name.lower()} ({status}) in BEAT since "
                      f"{known.settled:%Y-%m-%d %H:%M:%S}, still {record.state} on Slurm",
                      experiment_id=known.experiment_id, block=known.block, split_id=known.split_id, **ids)


# --- lost -------------------------------------------------------------------------------------


def unseen(facts: Facts) -> list[SplitRow]:
    """Submitted splits whose array neither the listing nor sacct's window shows, and not confirmed by id.

    A split recorded after squeue was read, or submitted before sacct's window,
    cannot be judged by this run and is left out. The caller looks these up by
    id (squeue -j, sacct -j: any user's jobs) before any is counted, so that a
    run by another Slurm user than the bridge's never makes a split lost.
    """
    seen = {str(r.array_job_id) for r in facts.jobs} | {str(r.array_job_id) for r in facts.accounted}
    seen |= facts.confirmed
    return [split for split in facts.splits
            if split.status in SUBMITTED and split.array_id and split.array_id not in seen
            and (split.submitted is None or facts.window_start <= split.submitted < facts.read_at)]


def lost_splits(facts: Facts, rule: LostRule) -> tuple[list[Divergence], list[Divergence], dict[int, Misses]]:
    """Submitted splits no source knows (unseen): (lost, watched, the miss counts to store)."""
    lost: list[Divergence] = []
    watched: list[Divergence] = []
    counts: dict[int, Misses] = {}
    for split in unseen(facts):
        array_id = split.array_id or ""  # unseen() keeps only splits with one
        before = facts.misses.get(split.split_id)
        if before is not None and before.array_id == array_id:
            count = Misses(array_id, before.misses + 1, before.first_miss)
        else:
            count = Misses(array_id, 1, facts.now)
        counts[split.split_id] = count
        waited = (facts.now - count.first_miss).total_seconds()
        confirmed = may_release(count.misses, count.first_miss, facts.now, rule)
        detail = (f"{SplitStatus(split.status).name.lower()} ({split.status}) in BEAT; neither squeue nor sacct "
                  f"knows array {array_id}: {count.misses} run(s) in a row over {waited:.0f} s")
        if not confirmed:
            detail += f" (lost after {rule.misses} runs over {rule.grace:.0f} s)"
        (lost if confirmed else watched).append(Divergence(
            "lost", detail, split.experiment_id, split.block, split.split_id, split.tag,
            split.element_id or split.array_id, None))
    return lost, watched, counts


# --- divergent --------------------------------------------------------------------------------


def divergent(facts: Facts) -> list[Divergence]:
    """Final splits (rows, else snapshots) whose Slurm final state disagrees with BEAT's, each element once.

    A split resubmitted after a failure (bridge.resubmission) has a snapshot of each earlier attempt,
    another element, split status F: a FAILED, NODE_FAIL, TIMEOUT or OUT_OF_MEMORY there agrees.
    """
    sacct = {f"{job}_{task}": r for (job, task), r in latest_by_element(list(facts.accounted)).items()}
    found: list[Divergence] = []
    covered: set[str] = set()
    for split in facts.splits:
        if split.status in FINAL and split.element_id:
            covered.add(split.element_id)
            found += _disagree(split.status, _slurm_state(sacct, split.element_id, split.slurm_state, "the poll"),
                               split.experiment_id, split.block, split.split_id, split.tag, split.element_id)
    for snap in facts.snapshots:
        if snap.element_id not in covered:
            fallback = "sacct, at settling" if snap.from_sacct else "the poll"
            found += _disagree(snap.split_status, _slurm_state(sacct, snap.element_id, snap.state, fallback),
                               snap.experiment_id, snap.block, snap.split_id, snap.tag, snap.element_id)
    return found


def _slurm_state(sacct: Mapping[str, SlurmRecord], element_id: str, recorded: str | None,
                 fallback: str) -> tuple[str | None, str]:
    """Slurm's final state of an element and where it was read: this run's sacct, else what the database holds."""
    record = sacct.get(element_id)
    if record is not None and not record.pending_range and slurm_final(record.state_text):
        return record.state_text, "sacct"
    return recorded, fallback


def _disagree(status: str, slurm: tuple[str | None, str], experiment_id: int | None, block: str | None,
              split_id: int, tag: str | None, element_id: str) -> list[Divergence]:
    state_text, source = slurm
    if not slurm_final(state_text):
        return []  # not known final on Slurm: an orphan's business, or nothing read yet
    state = normalize_state(state_text or "")
    if status == SplitStatus.COMPLETED.value and state != "COMPLETED":
        detail = f"done (C) in BEAT, {state} on Slurm ({source})"
    elif status == SplitStatus.FAILED.value and state == "COMPLETED":
        detail = f"failed (F) in BEAT, COMPLETED on Slurm ({source})"
    else:
        return []
    return [Divergence("divergent", detail, experiment_id, block, split_id, tag, element_id, state)]


# --- stuck ------------------------------------------------------------------------------------


def stuck(facts: Facts, stuck_after: float) -> list[Divergence]:
    """Claims never recorded, older than `stuck_after` seconds or already reported stuck."""
    on_slurm = {r.name: r.array_job_id for r in facts.jobs}
    found = []
    for claim in facts.claims:
        since = _claimed_at(claim)
        age = (facts.now - since).total_seconds() if since is not None else None
        if not claim.reported and (age is None or age < stuck_after):
            continue
        detail = (f"{len(claim.split_ids)} split(s) claimed {'' if age is None else f'{age:.0f} s ago '}and never "
                  "recorded: whether sbatch took them is unknown; the submit cycle looks the tag up ([claims])")
        if claim.tag in on_slurm:
            detail += f"; squeue lists it as array {on_slurm[claim.tag]}: the next cycle records it"
        found.append(Divergence("stuck", detail, claim.experiment_id, claim.block, min(claim.split_ids),
                                claim.tag, str(on_slurm[claim.tag]) if claim.tag in on_slurm else None))
    return found


def _claimed_at(claim: Claim) -> datetime | None:
    """When the claim was made: its tag says (naive UTC), else its first look-up."""
    parsed = parse_tag(claim.tag)
    made = (datetime.fromtimestamp(parsed.made, timezone.utc).replace(tzinfo=None)
            if parsed is not None else None)
    known = [t for t in (made, claim.since) if t is not None]
    return min(known) if known else None


def window(now: datetime, since: timedelta, submitted: Sequence[datetime], margin: timedelta) -> datetime:
    """sacct's -S: `since` ago, or earlier to cover every submitted split that could be judged lost."""
    return min([now - since, *(t - margin for t in submitted)])
