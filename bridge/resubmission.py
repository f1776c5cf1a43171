"""Failure-aware resubmission: a split Slurm killed for its node, memory or time runs again, once decided.

The poller reads the failure (poller.states: node_fail, out_of_memory,
timed_out) and hands the queues' rules for it (bridge.failure_policy) to
bridge.slurm_events, whose locked transaction calls `try_resubmit` *before*
on_split_fail: the split goes back to queued and unclaimed, with its next
attempt's number, queue and excluded nodes, and the normal exactly-once
submitter (bridge.submit) sends it again as an array of that queue. BEAT's
callbacks see one outcome: on_split_started fired once (a later attempt's
start is recorded as `attempt_started`), then done, or fail once the rules say
no. Each attempt is in the state history: `resubmit:<reason>` rows (attempt,
reason, node, Slurm element, queue), `attempt_started` rows (attempt, node);
and each attempt that ran has its accounting snapshot (bridge.snapshots): the
failed one's is added here, split status F and the poller's verdict, so that
an audit counts the element and its wasted core-hours.

The rule itself (`decide`) is pure: which failures, retries left, experiment
still scheduled or running, no sibling failed, the split not being cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.failure_policy import KEYS, OnFailure
from bridge.history import record, transition
from bridge.models import LIVE_EXPERIMENT, ExperimentStatus, Job, JobSplit, Queue, SplitStatus, StateHistory
from bridge.snapshots import failed_attempt

log = logging.getLogger(__name__)

S = SplitStatus
SOURCE = "resubmit"  # history rows: "resubmit:out_of_memory", ...
STARTED = "attempt_started"  # a later attempt's start: not on_split_started again
NO_NODE = ("", "None assigned")


@dataclass(frozen=True)
class Decision:
    """Whether a failed attempt runs again, and where; `why` says it either way (logged, and in the history)."""

    resubmit: bool
    why: str
    queue: str | None = None  # the next attempt's queue
    exclude: tuple[str, ...] = ()  # nodes the next attempt must avoid


def decide(reason: str | None, rule: OnFailure | None, *, ran_on: str, done: int, split: SplitStatus,
           experiment: ExperimentStatus, sibling_failed: bool, node: str | None = None,
           excluded: Sequence[str] = ()) -> Decision:
    """The rule: resubmit only a failure its queue configures, with retries left, while nothing else ended the job.

    `done` counts this split's earlier resubmissions for the same reason (on any queue);
    `excluded` are the nodes earlier attempts already avoid.
    """
    if rule is None:
        key = KEYS.get(reason or "")
        return Decision(False, f"queue {ran_on!r} has no {key}" if key else f"{reason} is never resubmitted")
    if split not in (S.QUEUED, S.PROCESSING):
        return Decision(False, f"the split is {split.name.lower()}")
    if experiment not in LIVE_EXPERIMENT:
        return Decision(False, f"its experiment is {experiment.name.lower()}")
    if sibling_failed:
        return Decision(False, "a sibling split has failed")
    if done >= rule.retries:
        return Decision(False, f"{KEYS[reason or '']}.retries = {rule.retries} used up")
    nodes = tuple(excluded)
    if rule.exclude_node and node and node not in NO_NODE and node not in nodes:
        nodes += (node,)
    queue = rule.resubmit_to or ran_on
    avoid = f", excluding {','.join(nodes)}" if nodes else ""
    return Decision(True, f"retry {done + 1} of {rule.retries} to queue {queue!r}{avoid}", queue, nodes)


def try_resubmit(session: Session, row: JobSplit, job: Job, reason: str | None, rules: Mapping[str, OnFailure],
                 message: str = "") -> bool:
    """In the caller's locked transaction: queue a failed split again if `decide` says so; True if it was.

    `rules` are the queues' rules for this failure (queue name -> OnFailure); the one
    of the queue the attempt ran on applies. `message` is the failure's system error.
    """
    ran_on = _queue_name(session, row, job)
    done = session.scalar(select(func.count()).select_from(StateHistory).where(
        StateHistory.entity == JobSplit.__tablename__, StateHistory.entity_id == row.id,
        StateHistory.source == f"{SOURCE}:{reason}")) or 0
    siblings = session.scalars(select(JobSplit.status).where(JobSplit.job_id == job.id, JobSplit.id != row.id))
    decision = decide(reason, rules.get(ran_on), ran_on=ran_on, done=done, split=row.status,
                      experiment=job.block.experiment.status, sibling_failed=S.FAILED in set(siblings),
                      node=row.slurm_node, excluded=split_nodes(row.exclude_nodes))
    attempt = f"attempt {row.attempt} of split {row.id} ({row.slurm_element_id or '-'}) failed: {reason}"
    if not decision.resubmit:
        if rules:
            log.info("%s on %s; not resubmitted: %s", attempt, row.slurm_node or "no node", decision.why)
        return False
    target = session.scalar(select(Queue.id).where(Queue.name == decision.queue))
    if target is None:  # the file names it (the loader checks), the database not yet: `queues sync`
        log.warning("%s; not resubmitted: queue %r is not in the database", attempt, decision.queue)
        return False
    why = (f"{attempt} on node {row.slurm_node or '-'} in queue {ran_on!r}"
           f"{': ' + message if message else ''}; attempt {row.attempt + 1}: {decision.why}")
    seen = row.status
    snapshot = failed_attempt(session, row, job, f"failed:{reason}")  # the poller's label; before ids are cleared
    moved = transition(
        session, row, S.QUEUED, {S.QUEUED, S.PROCESSING}, source=f"{SOURCE}:{reason}", reason=why, warn=True,
        attempt=row.attempt + 1, queue_id=None if target == job.block.queue_id else target,
        exclude_nodes=",".join(decision.exclude) or None, submission_tag=None, slurm_job_id=None,
        slurm_element_id=None, slurm_state=None, slurm_node=None, slurm_exit_code=None, submit_time=None,
        start_time=None, end_time=None, worker_id=None, cache_errors=0)
    if moved and seen == S.QUEUED:  # first seen failed, never seen started: transition wrote no row
        record(session, row, seen, S.QUEUED, source=f"{SOURCE}:{reason}", reason=why)
    if moved:
        if snapshot is not None:
            session.add(snapshot)
        log.info("split %s resubmitted: %s", row.id, why)
    return moved


def start_again(session: Session, row: JobSplit, node: str | None) -> bool:
    """A later attempt started: QUEUED -> PROCESSING as `attempt_started`; on_split_started fired with the first."""
    return transition(session, row, S.PROCESSING, {S.QUEUED}, source=STARTED, warn=True,
                      reason=f"attempt {row.attempt} on node {node or '-'} ({row.slurm_element_id or '-'})")


def split_nodes(text: str | None) -> tuple[str, ...]:
    return tuple(n for n in (text or "").split(",") if n)


def with_exclude(directives: Sequence[str], nodes: str | None) -> tuple[str, ...]:
    """The admin's extra directives plus `--exclude=<nodes>`, merged into an --exclude the admin already set."""
    if not nodes:
        return tuple(directives)
    merged, found = [], False
    for text in directives:
        if text.startswith("--exclude="):
            text, found = f"{text},{nodes}", True
        merged.append(text)
    return tuple(merged) if found else (*merged, f"--exclude={nodes}")


def _queue_name(session: Session, row: JobSplit, job: Job) -> str:
    """The queue this attempt ran on: the split's own (a resubmission's), else its block's."""
    queue = session.get(Queue, row.queue_id) if row.queue_id is not None else job.block.queue
    return queue.name if queue is not None else ""
