"""Daemons we start ourselves, tracked by pid files: start, check, stop exactly ours.

Besides the runners, this is the only module that starts processes: the local
cluster's daemons run in the foreground of their own session, with their output in
a log file, and their pid in a file of ours. Stopping reads that file and checks
/proc/PID/cmdline first, so a recycled pid is never killed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Daemon:
    """A long-running process of ours: its argv, pid file and log file."""

    name: str
    argv: tuple[str, ...]
    pid_file: Path
    log_file: Path

    @property
    def binary(self) -> str:
        return Path(self.argv[0]).name


def read_pid(pid_file: Path) -> int | None:
    """The pid in the file, or None when there is no (valid) file."""
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def is_running(pid: int, binary: str) -> bool:
    """True if pid is a live (non-zombie) process running `binary`.

    Zombies count as exited: in a container nobody may reap them for a while
    (slurm-notes.md).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return False
    if not cmdline[0]:  # a process in the middle of execve shows no arguments yet: it is not gone
        return True
    return Path(cmdline[0].decode(errors="replace")).name == binary


def running_pid(daemon: Daemon) -> int | None:
    """The daemon's pid if it runs, else None (a stale pid file is ignored)."""
    pid = read_pid(daemon.pid_file)
    if pid is not None and is_running(pid, daemon.binary):
        return pid
    return None


def start(daemon: Daemon, env: Mapping[str, str]) -> int:
    """Start the daemon in its own session, output appended to its log; return its pid."""
    daemon.log_file.parent.mkdir(parents=True, exist_ok=True)
    daemon.pid_file.parent.mkdir(parents=True, exist_ok=True)
    log.debug("start %s: %s", daemon.name, daemon.argv)
    with open(daemon.log_file, "ab") as out:
        proc = subprocess.Popen(
            daemon.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
            close_fds=True,
        )
    daemon.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def stop(daemon: Daemon, timeout: float = 10.0) -> bool:
    """Stop the daemon if it runs (TERM, then KILL after timeout); True if it was running."""
    pid = running_pid(daemon)
    if pid is None:
        daemon.pid_file.unlink(missing_ok=True)
        return False
    _signal(pid, signal.SIGTERM)
    if not wait_gone(pid, daemon.binary, timeout):
        log.warning("%s (pid %s) ignored SIGTERM for %.0f s: killing it", daemon.name, pid, timeout)
        _signal(pid, signal.SIGKILL)
        wait_gone(pid, daemon.binary, 5.0)
    daemon.pid_file.unlink(missing_ok=True)
    return True


def wait_gone(pid: int, binary: str, timeout: float) -> bool:
    """Wait until pid no longer runs binary; True if it is gone within timeout."""
    deadline = time.monotonic() + timeout
    while is_running(pid, binary):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, or a note that it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} does not exist)"


def argv_of(*parts: str | os.PathLike[str]) -> tuple[str, ...]:
    """An argv tuple from strings and paths."""
    return tuple(str(p) for p in parts)


__all__: Sequence[str] = [
    "Daemon", "argv_of", "is_running", "read_pid", "running_pid", "start", "stop", "tail", "wait_gone",
]
