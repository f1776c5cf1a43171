"""The Slurm client over pyslurm: slurmctld's and slurmdbd's C API instead of a process per command.

Same contract and guarantees as the CLI client (bridge.slurm_client), which it
extends: submit, find, status, accounting, cancel and MaxArraySize go through
libslurm in a worker process (bridge.pyslurm_process: killed on timeout, so a
hung or crashing C call never takes the daemon down); the worker's answers are
squeue's and sacct's lines (bridge.pyslurm_rows), parsed by the CLI client's
own parsers, so the poller's view is the same object either way. What pyslurm
22.5.3 has no call for, or answers less exactly than the command, still runs
as commands through the runner, as in the CLI client: `sbatch --test-only`,
`bash -n`, `sacctmgr show`, partitions and nodes for `queues check`, pending
reasons, and the audit snapshots' sacct with steps (`usage`: pyslurm.db gives
TotalCPU in whole seconds, dropping slurmdbd's microseconds, and the audit must
agree with sacct).

The job description comes from the directive mapping (bridge.render.sbatch_directives),
never from the script's `#SBATCH` comments, which pyslurm ignores.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridge import slurm as cmds
from bridge.errors import CommandError
from bridge.pyslurm_process import PyslurmProcess, WorkerError
from bridge.pyslurm_rows import UnsupportedDirective, job_description, unmapped_lines
from bridge.sacct import SlurmRecord, parse_sacct
from bridge.slurm_client import (
    FIND_MARGIN,
    OutcomeUnknown,
    SlurmClient,
    StatusView,
    SubmissionRefused,
    SubmitLimitReached,
    utc_naive_now,
)
from bridge.squeue import squeue_view
from bridge.tags import tag_age

log = logging.getLogger(__name__)

SBATCH_FAILED = "sbatch: error: Batch job submission failed: "  # sbatch's words around the same slurm_strerror


@dataclass
class PyslurmClient(SlurmClient):
    """SlurmClient whose Slurm calls are libslurm's, made in `worker` (a PyslurmProcess)."""

    worker: PyslurmProcess = field(default_factory=PyslurmProcess, repr=False)

    def submit(self, script: str, directives: Mapping[str, str | None] | None = None) -> int:
        """slurm_submit_batch_job with the description built from `directives`; errors as SlurmClient.submit's.

        slurmctld's refusal is slurm_strerror's text, the text sbatch prints after
        "Batch job submission failed:", and libslurm logs the reason (a submit
        limit's name) as sbatch does: the CLI client's rules classify both.
        """
        if directives is None:
            raise SubmissionRefused("the pyslurm client needs the array's directive mapping: pyslurm ignores "
                                    "#SBATCH lines in the script")
        stray = unmapped_lines(script, directives)
        if stray:
            raise SubmissionRefused(f"the script's #SBATCH lines {', '.join(stray)} are not in the bridge's "
                                    "directives (a template adding its own?): pyslurm would ignore them; "
                                    "give them as the queue's extra_directives")
        try:
            description = job_description(directives)
        except UnsupportedDirective as e:
            raise SubmissionRefused(str(e)) from e
        try:
            return self.worker.call("submit", script, description, timeout=self.timeouts.submit)
        except WorkerError as e:
            raise self._refusal(e) from e
        except CommandError as e:  # timed out (killed) or the worker died mid-call: it may have been accepted
            raise OutcomeUnknown(e.argv, None, e.stdout, e.stderr, str(e)) from e

    @staticmethod
    def _refusal(error: WorkerError) -> Exception:
        if error.kind in ("value", "import"):  # refused before any RPC
            return SubmissionRefused(f"pyslurm: {error.stderr}")
        # as sbatch prints it: libslurm's logged reason (e.g. AssocMaxSubmitJobLimit), then the error
        stderr = "\n".join(line for line in (*error.log.splitlines(), SBATCH_FAILED + error.stderr) if line)
        limit = cmds.submit_limit_reason(stderr)
        if limit is not None:
            return SubmitLimitReached(limit, stderr)
        if not cmds.is_transient(stderr):
            return SubmissionRefused(cmds.permanent_reason(stderr) or error.stderr)
        if cmds.surely_not_submitted(stderr):
            return CommandError(error.argv, 1, "", stderr)
        return OutcomeUnknown(error.argv, 1, "", stderr)

    def find(self, tag: str, age: float | None = None) -> int | None:
        """The array id under the tag: slurmctld's job table first, then slurmdbd (as SlurmClient.find)."""
        table_error = None
        try:
            found = self._one(tag, set(self.worker.call("names", tag, timeout=self.timeouts.find)))
            if found is not None:
                return found
        except CommandError as e:
            table_error = str(e)
        age = (tag_age(tag) or 0.0) if age is None else age
        start = utc_naive_now() - timedelta(seconds=max(age, 0.0) + FIND_MARGIN)
        text = self.worker.call("accounting", start, None, [], [tag], timeout=self.timeouts.find)
        found = self._one(tag, {r.array_job_id for r in parse_sacct(text)})
        if found is None and table_error is not None:
            raise CommandError(("pyslurm", "names"), None, "", table_error,
                               f"cannot tell whether Slurm has {tag}: the job table could not be read "
                               f"({table_error}) and slurmdbd, which lags it, does not list it")
        return found

    def cancel(self, element_ids: Iterable[str]) -> list[str]:
        """slurm_kill_job2 for every element id, in one worker call; refusals logged (asked again next cycle)."""
        ids = sorted(set(element_ids))
        if ids:
            cmds.scancel_argv(ids)  # the same check of the ids as scancel's
            self._cancel_call("cancel", ids, f"{len(ids)} elements")
        return ids

    def cancel_by_name(self, tags: Iterable[str]) -> list[str]:
        tags = sorted(set(tags))
        for tag in tags:
            cmds.scancel_by_name_argv(tag)
            self._cancel_call("cancel_by_name", tag, f"the jobs named {tag}")
        return tags

    def _cancel_call(self, op: str, what: object, text: str) -> None:
        try:
            refused = self.worker.call(op, what, timeout=self.timeouts.cancel)
        except CommandError as e:
            log.warning("cancel of %s: %s (asked again next cycle)", text, e)
            return
        for job_id, why in refused.items():
            if "already completed" not in why.lower() and "invalid job id" not in why.lower():
                log.warning("cancel of %s: %s (asked again next cycle)", job_id, why)

    def _squeue(self, view: StatusView, array_ids: Sequence[int]) -> None:
        """One slurm_load_jobs for every array (no chunks: no command line to bound), merged into the view."""
        view.squeue_calls += 1
        try:
            text = self.worker.call("squeue", list(array_ids), timeout=self.timeouts.status)
        except CommandError as e:
            view.squeue_error = str(e)
            return
        found = squeue_view(text, self._lines)
        view.records, view.pending, view.bare = found.records, found.pending, found.bare

    def _sacct_rows(self, start: datetime, end: datetime | None, array_ids: Sequence[int],
                    view: StatusView | None = None, timeout: float | None = None) -> list[SlurmRecord]:
        """slurmdbd's allocation rows of the arrays (pyslurm.db), one call; CommandError when it cannot answer."""
        if view is not None:
            view.sacct_calls += 1
        text = self.worker.call("accounting", start, end, list(array_ids), [],
                                timeout=timeout or self.timeouts.status)
        return parse_sacct(text)

    def config(self) -> Mapping[str, str]:
        """MaxArraySize, ClusterName and the version from slurm_load_ctl_conf; empty when unreadable."""
        try:
            return self.worker.call("config", timeout=self.timeouts.info)
        except CommandError as e:
            log.warning("pyslurm config: %s", e)
            return {}

    def version(self) -> str:
        """The Slurm version slurmctld reports ("22.05.8"); CommandError if unknown."""
        return self.worker.call("hello", timeout=self.timeouts.info)["slurm"]

    def close(self) -> None:
        self.worker.close()
