"""A replay fake of Slurm for the decision code: recorded real outputs, and faults on demand.

`ReplayRunner` is a Runner (bridge.runner's one-method seam) that answers
sbatch, squeue, sacct, scancel, scontrol and sinfo only with what a test queued
for that kind of call (invoke's MockContext: an unexpected command is an
error, never a silent default). Answers come from the recordings under
tests/data/replay/ (made by scripts/record_replays.py on the live cluster, ids
replaced by placeholders: `{job}`, `{job+N}`, `{tag}`), rendered for the ids the
test uses. Faults a real cluster cannot produce on demand are injected the same
way: a timeout, a lost SSH connection, garbage, a truncated answer.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import CommandTimeout
from bridge.runner import CommandResult
from bridge.ssh_runner import SshConnectionLost

REPLAY = Path(__file__).resolve().parent / "data" / "replay"
DATA = REPLAY.parent


def kind_of(argv: Sequence[str]) -> str:
    """The kind of a Slurm call: sbatch, squeue, sacct, find_squeue, find_sacct, sacct_usage, scancel, ...

    sacct_usage is sacct with its steps (no -X): accounting snapshots (bridge.snapshots).
    """
    command = argv[0]
    if command in ("squeue", "sacct") and "--name" in argv:
        return f"find_{command}"
    if command == "sacct" and "-X" not in argv:
        return "sacct_usage"
    if command == "sbatch" and "--version" in argv:
        return "sbatch_version"
    return command


def render(text: str, job: int, tag: str = "") -> str:
    """A recording's text for array `job` and job name `tag` (`{job}`, `{job+N}`, `{job-N}`, `{tag}`)."""
    text = re.sub(r"\{job([+-]\d+)\}", lambda m: str(job + int(m.group(1))), text)
    return text.replace("{job}", str(job)).replace("{tag}", tag)


@dataclass(frozen=True)
class Answer:
    """What one call gives back: a CommandResult, or an exception raised instead."""

    stdout: str = ""
    stderr: str = ""
    returncode: int = 0
    raises: Callable[[Sequence[str]], Exception] | None = None
    reply: Callable[[Sequence[str]], Answer] | None = None  # an answer made from the call's own argv

    def give(self, argv: Sequence[str]) -> CommandResult:
        if self.raises is not None:
            raise self.raises(argv)
        if self.reply is not None:
            return self.reply(argv).give(argv)
        return CommandResult(tuple(argv), self.returncode, self.stdout, self.stderr)


# --- faults -----------------------------------------------------------------------------------

TIMEOUT = Answer(raises=lambda argv: CommandTimeout(list(argv), None, "", ""))
LOST = Answer(raises=lambda argv: SshConnectionLost(list(argv), None, "", "", message=f"{argv[0]}: lost"))
GARBAGE = Answer(stdout="\x00\x7fgarbage|||\nnot|a|row\n<html>502 Bad Gateway</html>\n")
TRANSIENT = Answer(returncode=1,
                   stderr="sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n")
NOT_SUBMITTED = Answer(returncode=1, stderr="sbatch: error: Batch job submission failed: "
                       "Unable to contact slurm controller (connect failure)\n")  # never reached slurmctld
SQUEUE_DOWN = Answer(returncode=1,  # slurmctld slow: squeue failed, Slurm may still have the job
                     stderr="squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation\n")
SACCT_DOWN = Answer(returncode=1, stderr="sacct: error: Problem talking to the database: Connection refused\n")
EMPTY = Answer()


def truncated(answer: Answer, keep: float = 0.5) -> Answer:
    """The answer cut off part-way through (a connection dropped mid-output)."""
    cut = max(1, int(len(answer.stdout) * keep))
    return Answer(answer.stdout[:cut], answer.stderr, answer.returncode)


# --- recordings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """One scenario recorded on the live cluster: its calls by name."""

    scenario: str
    calls: dict[str, dict]
    array_size: int = 0

    @classmethod
    def load(cls, scenario: str) -> Recording:
        document = json.loads((REPLAY / f"{scenario}.json").read_text())
        return cls(scenario, {c["name"]: c for c in document["calls"]}, document.get("array_size", 0))

    def answer(self, name: str, job: int, tag: str = "") -> Answer:
        """The recorded call `name`, rendered for array `job` and tag `tag`."""
        call = self.calls[name]
        return Answer(render(call["stdout"], job, tag), render(call["stderr"], job, tag), call["returncode"])


def data_file(name: str, job: int | None = None, tag: str = "") -> Answer:
    """A whole recorded file of tests/data/ (already in sacct's or squeue's format) as an answer."""
    text = (DATA / name).read_text()
    return Answer(render(text, job, tag) if job is not None else text)


# --- the runner -------------------------------------------------------------------------------


@dataclass
class ReplayRunner:
    """Answers each kind of call from its queue; a standing answer repeats once its queue is empty."""

    queued: dict[str, deque[Answer]] = field(default_factory=dict)
    standing: dict[str, Answer] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    stdins: list[str | None] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    def then(self, kind: str, *answers: Answer) -> ReplayRunner:
        """Queue answers for the next calls of `kind`, in order."""
        self.queued.setdefault(kind, deque()).extend(answers)
        return self

    def always(self, kind: str, answer: Answer) -> ReplayRunner:
        """Answer every call of `kind` (once its queue is empty) with `answer`."""
        self.standing[kind] = answer
        return self

    def run(self, argv: Sequence[str], stdin: str | None = None, timeout: float = 60.0) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        self.stdins.append(stdin)
        self.timeouts.append(timeout)
        kind = kind_of(argv)
        queue = self.queued.get(kind)
        if queue:
            return queue.popleft().give(argv)
        if kind in self.standing:
            return self.standing[kind].give(argv)
        raise AssertionError(f"replay fake: no answer for {kind} call {' '.join(argv)!r}")

    def count(self, kind: str) -> int:
        """How many calls of `kind` were made."""
        return sum(1 for argv in self.calls if kind_of(argv) == kind)

    def of(self, kind: str) -> list[tuple[str, ...]]:
        return [argv for argv in self.calls if kind_of(argv) == kind]

    def scripts(self) -> list[str]:
        """The scripts given to sbatch, in order."""
        return [stdin or "" for argv, stdin in zip(self.calls, self.stdins) if kind_of(argv) == "sbatch"]
