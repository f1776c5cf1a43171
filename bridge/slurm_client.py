"""The one place that talks to Slurm: submit, find, status, cancel, accounting and cluster facts.

Every Slurm command of the bridge is run here, through the runner seam
(bridge.runner: local, SSH or a test's replay fake), with the timeout of its
kind from bridge.toml's ``[slurm.timeouts]``; every command line is built in
bridge.slurm and every answer parsed by bridge.slurm, bridge.sacct and
bridge.squeue. The client reports what Slurm said; what to do about it (retry,
release, fail a split, back off) is decided by the submitter and the poller.
Contract, after parsl's providers: ``submit(script) -> id``, ``status(ids)``,
``cancel(ids)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from bridge import slurm as cmds
from bridge.accounting import USAGE_FIELDS, UsageTable, parse_usage
from bridge.config import SlurmTimeouts
from bridge.errors import BridgeError, CommandError
from bridge.runner import CommandResult, Runner
from bridge.sacct import SlurmRecord, parse_sacct
from bridge.slurm_facts import ClusterFacts
from bridge.squeue import SqueueLines, by_element, parse_squeue, squeue_view
from bridge.status_view import Element, StatusView, Tracked
from bridge.tags import tag_age

__all__ = ["Element", "OutcomeUnknown", "SlurmClient", "StatusView", "SubmissionRefused", "SubmitLimitReached",
           "Tracked", "USAGE_CHUNK", "utc_naive_now"]

log = logging.getLogger(__name__)

STATUS_MARGIN = timedelta(minutes=5)  # sacct's window starts this long before the oldest submit
FIND_MARGIN = 120.0  # seconds before a tag was made that sacct --name looks back
SCANCEL_CHUNK = 1000  # element ids per scancel: keeps the argument list bounded
USAGE_CHUNK = 500  # element ids per sacct with steps (accounting snapshots): the bound


class SubmissionRefused(BridgeError):
    """sbatch refused a job array for a reason retrying will not fix."""


class SubmitLimitReached(BridgeError):
    """sbatch refused the array at a submit limit of an association or QOS: nothing was submitted.

    Back-pressure, not a failure: room frees as jobs end (bridge.back_pressure).
    `limit` is slurmctld's reason, e.g. "AssocMaxSubmitJobLimit".
    """

    def __init__(self, limit: str, stderr: str) -> None:
        super().__init__(f"{limit}: {stderr.strip().splitlines()[-1] if stderr.strip() else 'refused'}")
        self.limit = limit


class OutcomeUnknown(CommandError):
    """sbatch may or may not have been accepted (timed out, connection lost, no answer from slurmctld)."""


@dataclass
class SlurmClient(ClusterFacts):
    """Slurm's commands behind one runner, each kind with its own timeout."""

    runner: Runner
    timeouts: SlurmTimeouts = field(default_factory=SlurmTimeouts)
    _max_array_size: int | None = field(default=None, repr=False)
    _lines: SqueueLines = field(default_factory=SqueueLines, repr=False)  # squeue lines parsed last round

    def _run(self, argv: Sequence[str], timeout: float, stdin: str | None = None) -> CommandResult:
        return self.runner.run(argv, stdin=stdin, timeout=timeout)

    # --- submission ---------------------------------------------------------------------

    def submit(self, script: str, directives: Mapping[str, str | None] | None = None) -> int:
        """sbatch the script once; its array job id.

        `directives` (what the script's `#SBATCH` lines were rendered from) is
        for clients that cannot read the script's comments (bridge.pyslurm_client);
        sbatch reads the lines themselves.

        SubmitLimitReached when an association's or QOS's submit limit refused it
        (nothing submitted; room frees as jobs end); SubmissionRefused for a
        permanent cause (named from sbatch's stderr);
        CommandError when sbatch never reached slurmctld (nothing was
        submitted: run it again); OutcomeUnknown when it may have been accepted
        (a timeout, a lost connection, an error after slurmctld had the request):
        only the tag look-up can tell.
        """
        try:
            result = self._run(cmds.sbatch_argv(), self.timeouts.submit, stdin=script)
        except CommandError as e:
            if e.returncode is None:  # timed out, or the connection dropped: it may have run
                raise OutcomeUnknown(e.argv, None, e.stdout, e.stderr, str(e)) from e
            raise
        if result.ok:
            return cmds.parse_sbatch_parsable(result.stdout)
        limit = cmds.submit_limit_reason(result.stderr)
        if limit is not None:
            raise SubmitLimitReached(limit, result.stderr)
        if not cmds.is_transient(result.stderr):
            raise SubmissionRefused(cmds.permanent_reason(result.stderr) or result.stderr.strip()
                                    or f"sbatch exited {result.returncode}")
        if cmds.surely_not_submitted(result.stderr):
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr)
        raise OutcomeUnknown(result.argv, result.returncode, result.stdout, result.stderr)

    def find(self, tag: str, age: float | None = None) -> int | None:
        """The array job id Slurm knows under the tag (its job name), or None when surely unknown.

        squeue knows a job from the moment slurmctld accepts it (held ones too,
        which sacct --name does not list); sacct only 0.5-3 s later, but keeps it
        after slurmctld has forgotten it. None only when both answered and
        neither knows the tag; CommandError when either could not be read and
        the other did not find it. `age` bounds sacct's window (default: what
        the tag itself says of its age, bridge.tags).
        """
        squeue_error, by_name = None, cmds.squeue_by_name_argv(tag)
        try:
            queued = self._run(by_name, self.timeouts.find)
        except CommandError as e:
            squeue_error = str(e)
        else:
            if queued.ok:
                found = self._one(tag, {int(w) for w in queued.stdout.split() if w.isdigit()})
                if found is not None:
                    return found
            else:
                squeue_error = queued.stderr.strip() or f"squeue exited {queued.returncode}"
        age = (tag_age(tag) or 0.0) if age is None else age
        start = utc_naive_now() - timedelta(seconds=max(age, 0.0) + FIND_MARGIN)  # UTC: see COMMAND_ENV
        recorded = self._run(cmds.sacct_argv(start, names=[tag], fields=("JobID",)), self.timeouts.find).check()
        found = self._one(tag, {int(line.split("_")[0]) for line in recorded.stdout.split()
                                if line.split("_")[0].isdigit()})
        if found is None and squeue_error is not None:
            raise CommandError(by_name, None, "", squeue_error,
                               f"cannot tell whether Slurm has {tag}: squeue failed ({squeue_error}) "
                               "and sacct, which lags it, does not list it")
        return found

    @staticmethod
    def _one(tag: str, ids: set[int]) -> int | None:
        if len(ids) > 1:
            log.error("tag %s names several arrays %s: keeping the first", tag, sorted(ids))
        return min(ids) if ids else None

    def cancel(self, element_ids: Iterable[str]) -> list[str]:
        """One scancel for every element id (chunked for very long lists); the ids asked for.

        A failed or timed-out scancel is logged, not raised: the caller asks
        again on its next cycle for whatever Slurm does not report final.
        """
        ids = sorted(set(element_ids))
        for start in range(0, len(ids), SCANCEL_CHUNK):
            chunk = ids[start:start + SCANCEL_CHUNK]
            self._cancel(cmds.scancel_argv(chunk), f"{len(chunk)} elements")
        return ids

    def cancel_by_name(self, tags: Iterable[str]) -> list[str]:
        """`scancel --name <tag>` for each submission whose array id is unknown; the tags asked for."""
        tags = sorted(set(tags))
        for tag in tags:
            self._cancel(cmds.scancel_by_name_argv(tag), f"the jobs named {tag}")
        return tags

    def _cancel(self, argv: Sequence[str], what: str) -> None:
        try:
            result = self._run(argv, self.timeouts.cancel)
        except CommandError as e:
            log.warning("scancel of %s: %s (asked again next cycle)", what, e)
            return
        if not result.ok:
            log.warning("scancel of %s: %s (asked again next cycle)", what, result.stderr.strip())

    # --- status -------------------------------------------------------------------------

    def status(self, elements: Sequence[Element] | Tracked) -> StatusView:
        """Every element's latest state: one squeue for all their arrays, sacct for what it forgot.

        `elements` may be Tracked (the poller's memory): it then names the arrays
        and the elements squeue did not show, without a pass over every element.
        Never raises for a failing source: the view carries each source's error
        and the poller decides what that means.
        """
        view = StatusView()
        tracked = isinstance(elements, Tracked)
        arrays = elements.arrays() if tracked else sorted({int(e.slurm_job_id) for e in elements})
        if not arrays:
            return view
        self._lines.new_round()
        self._squeue(view, arrays)
        view.missing = elements.unseen(view) if tracked else view.unseen(elements)
        if view.missing:
            self._sacct(view, view.missing)
        return view

    def _squeue(self, view: StatusView, array_ids: Sequence[int]) -> None:
        """squeue over every array, in chunks of bounded length, merged into the view.

        The first chunk that fails stops the round (slurmctld busy or the login
        node unreachable: the next chunks would fail the same way, each after its
        timeout) and is the view's squeue_error; the chunks read are kept, and the
        elements of the others are unseen, so sacct is asked for them.
        """
        chunks = cmds.squeue_argvs(array_ids)
        for number, argv in enumerate(chunks, 1):
            view.squeue_calls += 1
            error = self._squeue_chunk(view, argv)
            if error is not None:
                where = f" (chunk {number} of {len(chunks)})" if len(chunks) > 1 else ""
                view.squeue_error = f"{error}{where}"
                return

    def _squeue_chunk(self, view: StatusView, argv: Sequence[str]) -> str | None:
        """One squeue call merged into the view; its error, or None."""
        try:
            result = self._run(argv, self.timeouts.status)
        except CommandError as e:
            return str(e)
        if result.ok:
            found = squeue_view(result.stdout, self._lines)
            if view.records or view.pending or view.bare:  # a later chunk: merged
                view.records.update(found.records)
                view.pending = view.pending | found.pending  # a new set: found's may be shared (frozen)
                view.bare += found.bare
            else:  # the first (usually the only) chunk: its containers, not a copy of 10,000 ids
                view.records, view.pending, view.bare = found.records, found.pending, found.bare
        elif cmds.NO_SUCH_JOB not in result.stderr.lower():  # every array of the chunk forgotten: no error
            return result.stderr.strip() or f"exit {result.returncode}"
        return None

    def _sacct(self, view: StatusView, missing: Sequence[Element]) -> None:
        submitted = [e.submit_time for e in missing if e.submit_time is not None]
        start = (min(submitted) if submitted else utc_naive_now()) - STATUS_MARGIN  # UTC: see COMMAND_ENV
        try:
            rows = self._sacct_rows(start, None, sorted({int(e.slurm_job_id) for e in missing}), view)
        except CommandError as e:
            view.sacct_error = str(e)
            return
        found = by_element(rows)
        view.from_sacct = set(found) - set(view.records)
        view.bare += rows
        view.records.update(found)

    def _sacct_rows(self, start: datetime, end: datetime | None, array_ids: Sequence[int],
                    view: StatusView | None = None, timeout: float | None = None) -> list[SlurmRecord]:
        records: list[SlurmRecord] = []
        for argv in cmds.sacct_argvs(start, end, array_ids):
            if view is not None:
                view.sacct_calls += 1
            result = self._run(argv, timeout or self.timeouts.status)
            if not result.ok:
                raise CommandError(result.argv, result.returncode, result.stdout, result.stderr,
                                   f"sacct exited {result.returncode}: "
                                   f"{result.stderr.strip() or result.stdout.strip()}")
            records += parse_sacct(result.stdout)
        return records

    def accounting(self, array_ids: Sequence[int], since: datetime, until: datetime | None = None
                   ) -> list[SlurmRecord]:
        """sacct's allocation rows of the arrays between `since` and `until` (naive UTC, as every time here)."""
        return self._sacct_rows(since, until, array_ids, timeout=self.timeouts.accounting)

    def usage(self, job_ids: Sequence[str], since: datetime, until: datetime | None = None) -> UsageTable:
        """sacct with steps (bridge.accounting) for element or array ids: ONE call, at most USAGE_CHUNK ids."""
        if len(job_ids) > USAGE_CHUNK:
            raise ValueError(f"usage() reads at most {USAGE_CHUNK} ids per sacct call, got {len(job_ids)}")
        argv = cmds.sacct_argv(since, until, job_ids, fields=USAGE_FIELDS, allocations=False)
        result = self._run(argv, self.timeouts.accounting)
        if not result.ok:
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr,
                               f"sacct exited {result.returncode}: {result.stderr.strip()}")
        return parse_usage(result.stdout)

    def pending_reasons(self, array_ids: Sequence[int]) -> dict[str, str]:
        """Why each pending element of the arrays waits (`Priority`, `Resources`, ...): ONE squeue call.

        {} when squeue has forgotten every array; CommandError, naming the command, when it does not answer.
        """
        if not array_ids:
            return {}
        argv = cmds.squeue_reasons_argv(sorted(set(array_ids)))
        result = self._run(argv, self.timeouts.status)
        if result.ok:
            return cmds.parse_squeue_reasons(result.stdout)
        if cmds.NO_SUCH_JOB in result.stderr.lower():
            return {}
        raise CommandError(result.argv, result.returncode, result.stdout, result.stderr,
                           f"squeue exited {result.returncode}: {result.stderr.strip() or 'no output'}")

    def jobs(self) -> list[SlurmRecord]:
        """Every job of this Slurm user slurmctld knows (one `squeue -t all --me`), names included.

        Pending ranges are expanded (one record per element, `pending_range`).
        CommandError, naming the command, when squeue does not answer.
        """
        return parse_squeue(self._checked(cmds.squeue_mine_argv(), self.timeouts.status).stdout)

    def accounted(self, since: datetime, until: datetime | None = None) -> list[SlurmRecord]:
        """Every job of this Slurm user sacct has between `since` and `until` (naive UTC): one `sacct -X`.

        CommandError, naming the command, when sacct does not answer.
        """
        argv = cmds.sacct_argv(since, until)
        return parse_sacct(self._checked(argv, self.timeouts.accounting).stdout)

    def _checked(self, argv: Sequence[str], timeout: float) -> CommandResult:
        result = self._run(argv, timeout)
        if not result.ok:
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr,
                               f"{' '.join(argv[:5])} ... exited {result.returncode}: "
                               f"{result.stderr.strip() or result.stdout.strip() or 'no output'}")
        return result


def utc_naive_now() -> datetime:
    """Now as the bridge stores times, naive UTC; Slurm's commands speak UTC too (bridge.runner.COMMAND_ENV)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
