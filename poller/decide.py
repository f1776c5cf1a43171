"""What one Slurm record means for one split: pure but for reading the element's result file and the cache.

The poller (poller.poll) asks this only for a split whose record changed or
still owes a callback; bridge.slurm_events applies the answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from bridge.backend import Backend
from bridge.cache import is_cache_complete
from bridge.failure_policy import OnFailure
from bridge.hashing import cache_path
from bridge.models import JobSplit
from bridge.models import SplitStatus as S
from bridge.results import beat_result, failure_result, result_problem
from bridge.sacct import SlurmRecord
from bridge.sbatch_scripts import spool as spool_files
from bridge.slurm_events import Action, Kind, SlurmFacts
from poller.memory import Active
from poller.states import TERMINAL, Outcome, judge, outcome_of

STDERR_TAIL = 65536  # bytes of an element's stderr read for slurmstepd's kill lines (they come last)


def facts_of(record: SlurmRecord) -> SlurmFacts:
    """What a split keeps of a record; End only once terminal (squeue's End of a running job is a forecast)."""
    terminal = outcome_of(record.state) in TERMINAL
    return SlurmFacts(record.state_text, f"{record.exit_code}:{record.signal}", record.node_list or None,
                      record.start, record.end if terminal else None)


def decide(session: Session, backend: Backend, split: Active, record: SlurmRecord,
           result_there: bool = False) -> Action:
    """What one record means for one split: pure but for reading the result file and the cache.

    `result_there`: the element's result file was seen (poller.early). An
    element Slurm shows running with a successful result has ended its work
    (it may be waiting for its release, bridge.handover): it is done as if
    COMPLETED. A failed result waits for Slurm's verdict, as before.
    """
    verdict = judge(record.state, record.exit_code, record.signal,
                    _stderr_of(backend, record) if record.state == "FAILED" else None)
    if verdict.outcome is Outcome.ACTIVE:
        return Action(Kind.RECORD)
    if verdict.terminal and record.end is None:
        return Action(Kind.RECORD)  # terminal rows without End are not settled yet (slurm-notes.md)
    if verdict.outcome is Outcome.STARTED:
        result = read_result(backend, record) if result_there else None
        if result is not None and result.get("status", 1) == 0:
            return _completed(session, backend, split.id, record, result)
        return Action(Kind.STARTED)
    if verdict.outcome is Outcome.CANCELLED:
        return Action(Kind.CANCELLED)
    if verdict.outcome is Outcome.FAILED:
        result = failure_result(verdict.exit_code, verdict.message, verdict.timed_out, read_result(backend, record))
        return Action(Kind.FAILED, result, f"failed:{verdict.reason}", reason=verdict.reason,
                      rules=failure_rules(backend, verdict.reason))
    return _completed(session, backend, split.id, record)


def failure_rules(backend: Backend, reason: str | None) -> dict[str, OnFailure]:
    """Each queue's rule for this failure (queues.toml's on_node_fail, ...): empty when none resubmits it."""
    found = {name: queue.failures.for_reason(reason) for name, queue in backend.config.queues.items()}
    return {name: rule for name, rule in found.items() if rule is not None}


def _completed(session: Session, backend: Backend, split_id: int, record: SlurmRecord,
               result: dict[str, Any] | None = None) -> Action:
    """COMPLETED: the element's result must be there, and the job's cache complete, before on_split_done.

    A result file not there (yet: the shared file system may lag) is checked
    again on the next cycles, up to cache_errors times, then the split fails
    naming the file; an unreadable one fails it at once (read_result).
    `result`: the one the caller has read already (else it is read here).
    """
    result = result if result is not None else read_result(backend, record)
    if result is not None and result.get("status", 0) != 0:
        return Action(Kind.FAILED, result, "failed:result")
    if result is None:
        problem: str | None = f"no result file {result_path(backend, record)}"
    else:
        problem = _cache_problem(session, backend, split_id)
    if problem is None:
        return Action(Kind.DONE, result)
    return Action(Kind.CACHE_PENDING, problem=problem, cache_limit=backend.config.cache_errors)


def _cache_problem(session: Session, backend: Backend, split_id: int) -> str | None:
    """None when this is not the job's last open split, or when every output's cache is complete."""
    split = session.get(JobSplit, split_id)
    if split is None:
        return None
    siblings = split.job.splits
    if any(s.status != S.COMPLETED for s in siblings if s.id != split_id):
        return None
    for output in split.job.block.outputs:
        if not is_cache_complete(cache_path(output.hash), len(siblings), str(backend.config.cache_root)):
            return f"the cache of output {output.hash[:12]} is incomplete"
    return None


def read_result(backend: Backend, record: SlurmRecord) -> dict[str, Any] | None:
    """The element's result dict, or None when it wrote none (yet, or it was killed).

    A file that cannot be read, is not JSON, or holds values of the wrong type
    gives a failed result whose system error names the file (and the key).
    """
    result = spool_files.read_result(_spool(backend, record), record.array_task_id)
    problem = None if result is None else result_problem(result)
    if problem is not None:
        return beat_result(status=1, system_error=f"result file {result_path(backend, record)}: {problem}")
    return result


def result_path(backend: Backend, record: SlurmRecord) -> Path:
    return spool_files.result_file(_spool(backend, record), record.array_task_id)


def _spool(backend: Backend, record: SlurmRecord) -> Path:
    """The array's spool directory: its job name is its submission tag."""
    return spool_files.array_spool_dir(backend.config.spool_dir, record.name)


def _stderr_of(backend: Backend, record: SlurmRecord) -> str | None:
    """The tail of the element's --error file, where slurmstepd writes why it killed it (poller.states)."""
    path = _spool(backend, record) / f"slurm-{record.array_job_id}_{record.array_task_id}.err"
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, 2) - STDERR_TAIL))
            return file.read().decode(errors="replace")
    except OSError:
        return None
