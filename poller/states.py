"""The one table from a Slurm job state to what the poller does about it.

Sources: sacct(1) "JOB STATE CODES" and squeue(1) for the transient states.
A state missing from the table is logged and treated as still active: a
surprise must never read as success or failure.
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass

from bridge.sacct import normalize_state

log = logging.getLogger(__name__)


class Outcome(str, enum.Enum):
    """What a Slurm state means for a split."""

    ACTIVE = "active"  # queued or between states: nothing to do yet
    STARTED = "started"  # running on a node: on_split_started
    DONE = "done"  # on_split_done (after the result and the cache are checked)
    FAILED = "failed"  # on_split_fail
    CANCELLED = "cancelled"  # on_split_cancelled


TERMINAL = frozenset({Outcome.DONE, Outcome.FAILED, Outcome.CANCELLED})
ACTIVE = frozenset({Outcome.ACTIVE, Outcome.STARTED})

# state -> (outcome, reason for a failure)
STATES: dict[str, tuple[Outcome, str | None]] = {
    "PENDING": (Outcome.ACTIVE, None),
    "CONFIGURING": (Outcome.ACTIVE, None),
    "REQUEUED": (Outcome.ACTIVE, None),
    "REQUEUE_FED": (Outcome.ACTIVE, None),
    "REQUEUE_HOLD": (Outcome.ACTIVE, None),
    "RESV_DEL_HOLD": (Outcome.ACTIVE, None),
    "SPECIAL_EXIT": (Outcome.ACTIVE, None),
    "RESIZING": (Outcome.ACTIVE, None),
    "SUSPENDED": (Outcome.ACTIVE, None),
    "STOPPED": (Outcome.ACTIVE, None),
    "RUNNING": (Outcome.STARTED, None),
    "COMPLETING": (Outcome.STARTED, None),
    "SIGNALING": (Outcome.STARTED, None),
    "STAGE_OUT": (Outcome.STARTED, None),
    "COMPLETED": (Outcome.DONE, None),
    "FAILED": (Outcome.FAILED, "failed"),
    "OUT_OF_MEMORY": (Outcome.FAILED, "out_of_memory"),
    "TIMEOUT": (Outcome.FAILED, "timed_out"),
    "DEADLINE": (Outcome.FAILED, "deadline"),
    "BOOT_FAIL": (Outcome.FAILED, "boot_fail"),
    "NODE_FAIL": (Outcome.FAILED, "node_fail"),
    "PREEMPTED": (Outcome.FAILED, "preempted"),
    "REVOKED": (Outcome.FAILED, "revoked"),
    "CANCELLED": (Outcome.CANCELLED, None),
}

_MESSAGES = {
    "out_of_memory": "exceeded its memory limit and was killed",
    "timed_out": "reached its time limit and was killed",
    "deadline": "reached its deadline",
    "boot_fail": "its node failed to boot",
    "node_fail": "its node failed",
    "preempted": "was preempted by another job",
    "revoked": "was revoked (federation: it ran on another cluster)",
}
# Slurm's own evidence of a memory kill: a line slurmstepd writes into the element's --error
# file. jobacct_gather's OverMemoryKill (this cluster, 22.05, tests/data/stderr/): "slurmstepd-n1:
# error: StepId=1.batch exceeded memory limit (642703360 > 104857600), being killed" and "...:
# error: Exceeded job memory limit"; task/cgroup: "slurmstepd: error: Detected 1 oom-kill event(s)
# in StepId=... by the cgroup out-of-memory handler". Only slurmstepd's lines count: an algorithm
# that prints "out of memory" was not killed by Slurm for it.
_OOM_MARKERS = ("exceeded memory limit", "exceeded job memory limit", "oom-kill", "out of memory",
                "out-of-memory")
_SLURMSTEPD = re.compile(r"^slurmstepd(?:-[^:\s]+)?: ")
SIGKILL = 9


@dataclass(frozen=True)
class Verdict:
    """What one sacct state of one element means: outcome, why, and what to put in the Result."""

    outcome: Outcome
    state: str
    reason: str | None = None  # failed, out_of_memory, timed_out, ... (None unless FAILED)
    exit_code: int = 0
    signal: int = 0
    message: str = ""

    @property
    def timed_out(self) -> bool:
        return self.reason == "timed_out"

    @property
    def terminal(self) -> bool:
        return self.outcome in TERMINAL


def known_state(state: str) -> bool:
    """Whether the table knows the state (its first word, `+` stripped)."""
    return normalize_state(state) in STATES


def outcome_of(state: str) -> Outcome:
    """The outcome of a Slurm state; an unknown state stays active.

    Logged here only at DEBUG: the poller says it once per split, and again
    when it lasts (poller.unknown).
    """
    entry = STATES.get(normalize_state(state))
    if entry is None:
        log.debug("unknown Slurm state %r: treated as still active", state)
        return Outcome.ACTIVE
    return entry[0]


def is_out_of_memory(state: str, stderr: str | None = None) -> bool:
    """True for a memory kill by Slurm's own evidence: OUT_OF_MEMORY, or FAILED with slurmstepd's kill line.

    Slurm 22.05 without cgroups (jobacct_gather OverMemoryKill) reports the
    allocation as FAILED with ExitCode 0:9, never OUT_OF_MEMORY (slurm-notes.md);
    so does any other SIGKILL (a plain `kill -9`): the signal alone proves nothing.
    """
    state = normalize_state(state)
    if state == "OUT_OF_MEMORY":
        return True
    return state == "FAILED" and memory_kill_line(stderr) is not None


def memory_kill_line(stderr: str | None) -> str | None:
    """slurmstepd's line in an element's stderr saying it was killed for memory, or None."""
    for line in (stderr or "").splitlines():
        if _SLURMSTEPD.match(line) and any(marker in line.lower() for marker in _OOM_MARKERS):
            return line.strip()
    return None


def judge(state: str, exit_code: int = 0, signal: int = 0, stderr: str | None = None) -> Verdict:
    """The verdict on one element from its sacct state, ExitCode `N:S` and optional stderr text."""
    name = normalize_state(state)
    outcome = outcome_of(state)
    reason = STATES.get(name, (outcome, None))[1]
    if outcome is not Outcome.FAILED:
        return Verdict(outcome, name, None, exit_code, signal, _plain_message(outcome, name))
    if is_out_of_memory(name, stderr):
        reason = "out_of_memory"
    message = _fail_message(name, reason, exit_code, signal)
    evidence = memory_kill_line(stderr) if reason == "out_of_memory" else None
    return Verdict(outcome, name, reason, exit_code, signal, f"{message}; {evidence}" if evidence else message)


def _plain_message(outcome: Outcome, state: str) -> str:
    return {
        Outcome.DONE: "completed",
        Outcome.CANCELLED: "cancelled",
        Outcome.STARTED: "running",
    }.get(outcome, f"still active ({state or 'no state'})")


def _fail_message(state: str, reason: str | None, exit_code: int, signal: int) -> str:
    """A sentence for the Result's system error: which Slurm state, and the exit code kept."""
    why = _MESSAGES.get(reason or "", "failed")
    if reason == "failed":
        why = f"exited with code {exit_code}" if exit_code else "failed"
        if signal and not exit_code:
            why = f"was killed by signal {signal}" + (" (SIGKILL)" if signal == SIGKILL else "")
    elif signal:
        why += f" (signal {signal})"
    return f"Slurm state {state}: the element {why}; ExitCode {exit_code}:{signal}"
