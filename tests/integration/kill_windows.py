"""Kill `beat-bridge -v run` with SIGKILL at a chosen moment, and tell from its log where it died.

A life is one `run` process: its log is read line by line through a pipe as it
is written, and the kill goes out as soon as the line the life waits for
appears (the process is still inside the window the line opens: sbatch and
squeue take tens of milliseconds), or after a delay. Two windows matter for
exactly-once (issue 9):

* sbatch: the splits are claimed with a tag, the array id not yet recorded.
  Opened by the runner's DEBUG line of the sbatch call, closed by
  bridge.submit's INFO line "array J (tag) submitted to P".
  Its sharpest point, Slurm has accepted the array and the bridge has not
  recorded it, is hit on purpose: the process is stopped (SIGSTOP) while its
  sbatch child runs, and killed once that child has exited.
* poll: Slurm's state is being read and the callbacks are not all committed.
  Opened by poller.loop's "poll begins" with the runner's squeue line after it,
  closed by "poll over".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from poller_env import REPO
from sqlalchemy import select

from bridge.models import JobSplit
from bridge.slurm import squeue_by_name_argv


def _ran(line: str, command: str) -> bool:
    """The runner's DEBUG line of an external command: `run ('sbatch', ...)`."""
    return " run (" in line and f"'{command}'" in line


def is_sbatch(line: str) -> bool:
    return _ran(line, "sbatch") and "'--version'" not in line


def is_submitted(line: str) -> bool:
    return "bridge.submit:" in line and ") submitted to " in line


def is_poll_begins(line: str) -> bool:
    return "poller.loop: poll begins" in line


def is_poll_over(line: str) -> bool:
    return "poller.loop: poll over" in line


def is_split_transition(line: str) -> bool:
    """bridge.history's INFO line of a split's state change: `JobSplit 4 (...): Q -> P (source)`."""
    return "bridge.history: JobSplit " in line and " -> " in line


def window(lines: list[str]) -> str | None:
    """Where a process whose log ends with `lines` died: "sbatch", "poll", or None (elsewhere)."""
    last: dict[str, int] = {}
    for number, line in enumerate(lines):
        for key, test in (("sbatch", is_sbatch), ("submitted", is_submitted), ("begins", is_poll_begins),
                          ("over", is_poll_over), ("squeue", lambda t: _ran(t, "squeue"))):
            if test(line):
                last[key] = number
    if "sbatch" in last and last.get("submitted", -1) < last["sbatch"]:
        return "sbatch"
    if "begins" in last and last.get("over", -1) < last["begins"] < last.get("squeue", -1):
        return "poll"
    return None


def in_poll(lines: list[str]) -> bool:
    """Inside a poll (begun, not over) that has run squeue: the callbacks are being decided."""
    return window(lines) == "poll"


def children(pid: int) -> dict[int, tuple[str, str]]:
    """The child processes of `pid`: child pid -> (command name, state letter).

    Read from /proc/<pid>/task/*/children (each thread's own children), then one
    stat file per child: a scan of every process in /proc took milliseconds and
    missed a short sbatch more than once; this takes microseconds.
    """
    found = {}
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = listing.read_text().split()
        except OSError:  # the thread is gone meanwhile
            continue
        for child in map(int, pids):
            try:
                text = Path(f"/proc/{child}/stat").read_text()
            except OSError:  # gone meanwhile
                continue
            found[child] = (text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()[0])
    return found


def kill_after_child_exits(pid: int, command: str, timeout: float = 5.0) -> bool:
    """SIGKILL `pid` after its child `command` has exited but before the parent went on.

    The parent is stopped as soon as the child shows, the child runs to its end
    (a zombie: its stopped parent cannot reap it), then the parent is killed.
    False when no such child was caught (the kill went out anyway).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child = next((c for c, (name, _) in children(pid).items() if name == command), None)
        if child is not None:
            os.kill(pid, signal.SIGSTOP)
            while time.monotonic() < deadline and children(pid).get(child, ("", "Z"))[1] != "Z":
                time.sleep(0.005)
            exited = children(pid).get(child, ("", ""))[1] == "Z"
            os.kill(pid, signal.SIGKILL)
            return exited
        time.sleep(0.001)
    os.kill(pid, signal.SIGKILL)
    return False


TRIGGERS: dict[str, Callable[[list[str]], bool]] = {
    "sbatch": lambda lines: is_sbatch(lines[-1]),
    "sbatch-accepted": lambda lines: is_sbatch(lines[-1]),
    "squeue": lambda lines: _ran(lines[-1], "squeue") and in_poll(lines),
    "callback": lambda lines: is_split_transition(lines[-1]) and in_poll(lines),
}


@dataclass
class Life:
    """One `run` process killed at a target (a TRIGGERS key, or None for after `delay` seconds)."""

    target: str | None
    delay: float
    lines: list[str] = field(default_factory=list)
    triggered: bool = False
    child_exited: bool = False  # sbatch-accepted: the sbatch child had exited when the kill went out
    code: int | None = None

    @property
    def window(self) -> str | None:
        return window(self.lines)

    def __str__(self) -> str:
        how = f"at {self.target}" if self.triggered else f"after {self.delay:.1f} s"
        how += " (sbatch had exited)" if self.child_exited else ""
        return f"killed {how}, died in {self.window or 'neither window'}"


def kill_at(config: Path, log_path: Path, target: str | None, delay: float) -> Life:
    """Start `beat-bridge -v run`, SIGKILL it at the target's line (or after `delay` s at most), wait for it."""
    life = Life(target, delay)
    trigger = TRIGGERS[target] if target else None
    process = subprocess.Popen([sys.executable, "-m", "bridge.cli", "-v", "run", "--config", str(config)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(delay, process.kill)  # SIGKILL
    timer.start()
    try:
        with open(log_path, "a") as log:
            for line in process.stdout:
                life.lines.append(line.rstrip("\n"))
                if trigger and not life.triggered and trigger(life.lines):
                    if target == "sbatch-accepted":
                        life.child_exited = kill_after_child_exits(process.pid, "sbatch")
                    else:
                        process.kill()
                    life.triggered = True
                log.write(line)
            log.write(f"--- {life}\n")
    finally:
        timer.cancel()
        process.kill()
        life.code = process.wait(timeout=10)
    return life


TARGET_WAIT = 5.0  # seconds a life waits for its target line before it is killed anyway


def unrecorded_claims(env, runner) -> dict[str, bool]:
    """Tags of splits claimed whose array id was never recorded -> whether Slurm accepted the array.

    squeue alone answers: it knows an array from the moment sbatch returns, for MinJobAge (300 s) after.
    """
    with env.sessions() as session:
        tags = session.scalars(select(JobSplit.submission_tag).distinct().where(
            JobSplit.submission_tag.is_not(None), JobSplit.slurm_job_id.is_(None))).all()
    return {tag: bool(runner.run(squeue_by_name_argv(tag), timeout=30).check().stdout.split()) for tag in tags}
