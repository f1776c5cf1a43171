"""Hand a level over in one scheduling pass: an element whose end unblocks work ends after that work is submitted.

slurmctld starts a pending job at its next scheduling pass (the main and the
backfill pass, once a second each here: sched_interval, bf_interval), or at
once when a job's epilog completes on its node (the epilog-complete message
runs the scheduler). A dependent array submitted after its upstream elements
ended waits for the next pass: with tasks of whole seconds, most of a second
per level (bench/dag_latency.py). So an element of a job with dependent
blocks does not end right after a successful result: it stays until the
bridge writes its release file (``split-N.release``, bridge.sbatch_scripts.spool),
LINGER seconds at most. Meanwhile the daemon sees the result (poller.early),
its poll takes a successful result of such an element that Slurm still shows
running as the element's end (poller.decide: the result is BEAT's verdict, and
the element does nothing after it but wait; any other element's split waits
for Slurm's word, End included), fires on_split_done, splits and submits what
became runnable, and only then releases it (bridge.cycle.run_cycle). The
element's end then runs the scheduler while the dependents are queued: they
start within milliseconds wherever slurmd sends the epilog-complete message,
which it always does when the cluster has an Epilog (or a SPANK epilog);
without one it skips the message when the job's steps are already gone, a
race it loses part of the time, and the dependents wait for the next pass as
they would have anyway.

Bounds: an element waits LINGER at most (a daemon that is down or busy costs
each lingering element that much of its allocation, then it ends as before);
only jobs with dependent blocks and at most MAX_ELEMENTS splits linger, and
only while at most WATCHED_AT_MOST splits are active (the daemon watches
result files only then, poller.early).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.element_config import JobFacts
from bridge.models import ACTIVE_SPLIT, JobSplit
from bridge.sbatch_scripts import spool as spool_files

log = logging.getLogger(__name__)

LINGER = 1.0  # seconds an element waits for its release at most: about one scheduling pass
MAX_ELEMENTS = 64  # splits of a job above which its elements do not linger
# The daemon looks for result files only while at most this many splits are active (poller.early):
# beyond, a lingering element would always wait LINGER, so none lingers.
WATCHED_AT_MOST = 500

# A split on Slurm and not final: what the result watch follows (poller.early) and counts here.
ACTIVE_ON_SLURM = (JobSplit.slurm_element_id.is_not(None), JobSplit.status.in_(sorted(ACTIVE_SPLIT)))
_ACTIVE = select(func.count(JobSplit.id)).where(*ACTIVE_ON_SLURM)


def linger_for(job: JobFacts, active: int = 0, elements: int = 0) -> float:
    """How long the job's elements wait for their release after success: LINGER, or 0 (they end at once).

    `active`: splits on Slurm now; `elements`: this array's. Pure.
    """
    small = job.nb_splits <= MAX_ELEMENTS and active + elements <= WATCHED_AT_MOST
    return LINGER if job.hands_over and small else 0.0


def array_linger(session: Session, job: JobFacts, elements: int) -> float:
    """linger_for this array now: counts the active splits (one query) only for a job that may linger."""
    if linger_for(job, elements=elements) == 0:
        return 0.0
    return linger_for(job, session.scalar(_ACTIVE) or 0, elements)


def release(spool_root: str | Path, ended: Iterable[tuple[str, int]]) -> int:
    """Write the release file of each (submission tag, array index); returns how many were written.

    Called once the cycle has submitted what those ends made runnable. An
    element that ended already (it did not linger, or stopped waiting) finds
    nothing; a file that cannot be written costs that element LINGER, never a result.
    """
    written = 0
    for tag, index in ended:
        try:
            spool_files.release_file(spool_files.array_spool_dir(spool_root, tag), index).touch()
            written += 1
        except (OSError, ValueError) as e:
            log.debug("release of %s element %s not written: %s", tag, index, e)
    return written
