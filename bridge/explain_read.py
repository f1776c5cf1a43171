"""What `experiments show` reads: the database's rows, one squeue for pending reasons, the element logs.

Everything is turned into bridge.explain's plain rows here; the explanation
itself is pure. Slurm is asked once, only when a split of the experiment is
queued on Slurm (one `squeue -r -t PENDING` over those arrays, through
bridge.slurm_client); if that fails the error is kept and the rest is shown.
Element logs live in the array's spool directory (bridge.submit:
`<spool_dir>/<tag>/slurm-<array id>_<index>.out|.err`, the index being the
element id's); bridge.spool_retention removes settled ones, which shows as
"removed". Only the last TAIL_BYTES of a stderr log are read.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from bridge.errors import BridgeError, CommandError
from bridge.explain import BlockRow, ExperimentRow, Facts, JobRow, LogFacts, ResultRow, SnapshotRow, SplitRow
from bridge.job_rows import mirrors_of
from bridge.models import AccountingSnapshot, Block, Experiment, Job, JobSplit, Queue, Result, SplitStatus
from bridge.slurm_client import SlurmClient

TAIL_BYTES = 65536
WITH_TAIL = {SplitStatus.FAILED.value, SplitStatus.CANCELLED.value, SplitStatus.CANCELLING.value,
             SplitStatus.PROCESSING.value}  # a completed or queued split's stderr is not shown, only its path


def gather(session: Session, client: SlurmClient | None, spool_dir: Path, experiment_id: int,
           lines: int = 10) -> Facts:
    """The experiment's rows; client None: Slurm is not asked (pending reasons unknown, not an error)."""
    experiment = session.get(Experiment, experiment_id)
    if experiment is None:
        raise BridgeError(f"no experiment with id {experiment_id}: `beat-bridge experiments list` shows them")
    blocks = list(experiment.blocks)
    splits = [split_row(s, b.id) for b in blocks if b.job is not None for s in b.job.splits]
    snapshots = [snapshot_row(s) for s in session.scalars(
        select(AccountingSnapshot).where(AccountingSnapshot.experiment_id == experiment_id)
        .order_by(AccountingSnapshot.split_id, AccountingSnapshot.attempt))]
    results = [result_row(r) for r in session.scalars(
        select(Result).where(Result.block_id.in_([b.id for b in blocks])).order_by(Result.id))] if blocks else []
    queued = sorted({int(s.element_id.split("_")[0]) for s in splits
                     if s.status == SplitStatus.QUEUED.value and s.element_id})
    reasons, error = pending_reasons(client, queued)
    return Facts(
        experiment=ExperimentRow(experiment.id, experiment.author, experiment.name, experiment.status.value,
                                 experiment.creation_date, experiment.start_date, experiment.end_date),
        blocks=[block_row(session, b) for b in blocks], splits=splits, snapshots=snapshots, results=results,
        logs=element_logs(spool_dir, _log_targets(splits, snapshots), lines), reasons=reasons,
        slurm_asked=bool(queued) and client is not None, slurm_error=error,
    )


def pending_reasons(client: SlurmClient | None, array_ids: list[int]) -> tuple[dict[str, str], str | None]:
    """Slurm's reasons for the arrays' pending elements, and the error if squeue could not be read."""
    if client is None or not array_ids:
        return {}, None
    try:
        return client.pending_reasons(array_ids), None
    except CommandError as e:
        return {}, str(e).strip().splitlines()[0] if str(e).strip() else f"{e.argv[0]} failed"


def block_row(session: Session, block: Block) -> BlockRow:
    return BlockRow(
        id=block.id, name=block.name, status=block.status.value,
        queue=block.queue.name if block.queue else None, partition=block.queue.partition if block.queue else None,
        required_slots=block.required_slots, depends_on=tuple(d.name for d in block.dependencies),
        started=block.start_date, ended=block.end_date,
        job=job_row(session, block.job) if block.job is not None else None,
    )


def job_row(session: Session, job: Job) -> JobRow:
    """The job, the job it mirrors (the oldest non-mirror job with its key) or the mirrors following it."""
    if job.mirror:
        original = session.scalar(select(Job).where(Job.key == job.key, Job.mirror.is_(False), Job.id != job.id)
                                  .order_by(Job.id).limit(1))
        return JobRow(job.id, True, job.runnable_date, original=_job_name(original) if original else None)
    return JobRow(job.id, False, job.runnable_date, mirrors=tuple(_job_name(m) for m in mirrors_of(session, job)))


def _job_name(job: Job) -> str:
    block = job.block
    return f"{block.experiment.fullname}/{block.name} (experiment {block.experiment_id}, job {job.id})"


def split_row(split: JobSplit, block_id: int) -> SplitRow:
    return SplitRow(split.id, block_id, split.split_index, split.status.value, split.submission_tag,
                    split.slurm_element_id, split.slurm_state, split.slurm_node, split.slurm_exit_code,
                    split.start_time, split.end_time, split.attempt,
                    _queue_name(split), split.mapping_version)


def _queue_name(split: JobSplit) -> str | None:
    """The queue a resubmission gave the split (JobSplit.queue_id), by name; None: its block's."""
    session = object_session(split)
    queue = session.get(Queue, split.queue_id) if split.queue_id is not None and session is not None else None
    return queue.name if queue is not None else None


def snapshot_row(s: AccountingSnapshot) -> SnapshotRow:
    return SnapshotRow(s.split_id, s.block_name, s.element_id, s.split_status, s.split_index, s.submission_tag,
                       s.state, s.exit_code, s.node_list, s.elapsed_s, s.start, s.end, s.verdict, s.mapping_version,
                       s.attempt, s.queue_name)


def result_row(r: Result) -> ResultRow:
    return ResultRow(r.block_id, r.split_index, r.status, r.user_error, r.system_error, r.timed_out, r.cancelled)


def _log_targets(splits: Iterable[SplitRow], snapshots: Iterable[SnapshotRow]
                 ) -> list[tuple[str, str, str]]:
    """(tag, element id, split status) of every split that reached Slurm, live rows first."""
    seen: dict[str, tuple[str, str, str]] = {}
    for s in splits:
        if s.tag and s.element_id:
            seen.setdefault(s.element_id, (s.tag, s.element_id, s.status))
    for snap in snapshots:
        if snap.tag:
            seen.setdefault(snap.element_id, (snap.tag, snap.element_id, snap.split_status))
    return list(seen.values())


def element_logs(spool_dir: Path, targets: Iterable[tuple[str, str, str]], lines: int) -> dict[str, LogFacts]:
    """Each element's log paths, whether they are there, and (failed or running) its stderr's last lines."""
    root = Path(spool_dir).resolve()
    found = {}
    for tag, element_id, status in targets:
        directory = root / tag
        out, err = directory / f"slurm-{element_id}.out", directory / f"slurm-{element_id}.err"
        tail: tuple[str, ...] = ()
        if not directory.is_dir():
            state = "not written" if status == SplitStatus.QUEUED.value else "removed"
        elif err.is_file():
            state = "present"
            tail = tail_lines(err, lines) if status in WITH_TAIL and lines > 0 else ()
        else:
            state = "not written" if status == SplitStatus.QUEUED.value else "missing"
        found[element_id] = LogFacts(str(out), str(err), state, tail)
    return found


def tail_lines(path: Path, lines: int) -> tuple[str, ...]:
    """The file's last `lines` non-empty lines (read from its last TAIL_BYTES); () if it cannot be read."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ()
    rows = [row for row in data.decode("utf-8", errors="replace").splitlines() if row.strip()]
    if size > TAIL_BYTES and rows:
        rows = rows[1:]  # the first line read may be cut
    return tuple(rows[-lines:])
