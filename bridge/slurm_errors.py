"""What Slurm's error messages mean: retry, refuse for good, or wait for room (pure).

Each Slurm command's stderr is sorted here, once: transient (the controller or
slurmdbd was busy or unreachable: retry), permanent (the request can never
succeed: the splits fail with the line that says why), surely not submitted
(sbatch never reached slurmctld: run it again), or a submit limit of an
association or QOS (MaxSubmitJobs, GrpSubmitJobs, MaxSubmitJobsPerUser...):
room frees as jobs end, so the submitter waits (bridge.back_pressure).
"""

from __future__ import annotations

import re

# Retrying these is safe: the controller or slurmdbd was busy or unreachable.
# A submission that timed out may still have been accepted: reconcile by tag first.
TRANSIENT_PATTERNS: tuple[str, ...] = (
    "socket timed out",
    "resource temporarily unavailable",
    "unable to contact slurm controller",
    "slurm temporarily unable to accept job",
    "problem talking to the database",
    "failed to open persistent connection",
    "slurmdbd",
    "connection refused",
    "zero bytes were transmitted or received",
    "communication connection failure",
    "transport endpoint is not connected",
    "controller in standby mode",
    "try again",
)
# These will fail the same way every time: the splits fail with this message.
PERMANENT_PATTERNS: tuple[str, ...] = (
    "invalid partition name specified",
    "requested time limit is invalid",
    "more processors requested than permitted",
    "requested node configuration is not available",
    "job violates accounting/qos policy",
    "invalid qos specification",
    "invalid account",
    "invalid job array specification",
    "memory required by task is not available",
    "qosmax",
    "assocmax",
    "invalid generic resource",
    "invalid feature specification",
    "batch job submission failed",
)


# sbatch never reached slurmctld: nothing was submitted, so sbatch may simply be run again.
NOT_SUBMITTED_PATTERNS: tuple[str, ...] = (
    "unable to contact slurm controller",
    "connection refused",
    "slurm temporarily unable to accept job",
    "controller in standby mode",
)


def surely_not_submitted(stderr: str) -> bool:
    """True if sbatch's error says the request never reached slurmctld (a socket timeout does not)."""
    text = stderr.lower()
    return any(p in text for p in NOT_SUBMITTED_PATTERNS)


def is_transient(stderr: str) -> bool:
    """True if retrying the command later may succeed (and no permanent cause is named)."""
    text = stderr.lower()
    if permanent_reason(stderr) is not None:
        return False
    return any(p in text for p in TRANSIENT_PATTERNS)


def permanent_reason(stderr: str) -> str | None:
    """The line of stderr naming a cause that retrying will not fix, or None."""
    for line in stderr.splitlines():
        low = line.lower()
        if any(p in low for p in PERMANENT_PATTERNS if p != "batch job submission failed"):
            return line.strip()
    for line in stderr.splitlines():
        low = line.lower()
        if "batch job submission failed" in low and not any(p in low for p in TRANSIENT_PATTERNS):
            return line.strip()
    return None


# slurmctld's reason when a submission would pass a submit limit (22.05 prints it on its own line before
# "Job violates accounting/QOS policy (job submit limit, ...)"): AssocMaxSubmitJobLimit,
# AssocGrpSubmitJobsLimit, QOSMaxSubmitJobPerUserLimit, QOSMaxSubmitJobPerAccountLimit, QOSGrpSubmitJobsLimit.
# A size or time limit (QOSMaxWallDurationPerJobLimit...) prints the same last line and stays permanent.
SUBMIT_LIMIT = re.compile(r"\b(?:Assoc|QOS)\w*SubmitJobs?\w*Limit\b", re.IGNORECASE)


def submit_limit_reason(stderr: str) -> str | None:
    """The submit limit sbatch's refusal names (e.g. "AssocMaxSubmitJobLimit"), or None."""
    match = SUBMIT_LIMIT.search(stderr)
    return match.group(0) if match else None
