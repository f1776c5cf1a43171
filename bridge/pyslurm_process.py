"""The daemon's side of the pyslurm worker: one long-lived child, killed when a call overruns.

A call writes one request to the child's stdin and waits for the reply on its
stdout with select(), at most `timeout` seconds. A child that does not answer
in time (a libslurm call hung) is killed with SIGKILL and CommandTimeout is
raised; one that exits mid-call (libslurm crashed it) gives a CommandError with
its exit status and last stderr lines. Either way the next call starts a fresh
child, so the daemon outlives whatever the C library does. Like the runners
(bridge.runner), this module is the only one here that starts a process.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.errors import CommandError, CommandTimeout
from bridge.pyslurm_worker import read_frame, write_frame
from bridge.runner import COMMAND_ENV

log = logging.getLogger(__name__)

STDERR_KEPT = 1 << 20  # bytes of the worker's stderr kept between calls


class WorkerError(CommandError):
    """The pyslurm worker answered with an error: `kind` says whose ("rpc", "value", "import", "other").

    `log` is what libslurm logged during the call: slurmctld's reason beside the
    error number (a submit refused at a limit logs "error: AssocMaxSubmitJobLimit"
    and raises only slurm_strerror's "Job violates accounting/QOS policy ...").
    """

    def __init__(self, argv: Sequence[str], kind: str, message: str, log: str = "") -> None:
        said = log.strip().splitlines()[-1:] if log.strip() else []  # libslurm's own words, when it logged any
        super().__init__(tuple(argv), 1, "", message, f"pyslurm {argv[1] if len(argv) > 1 else ''}: {message}"
                         + (f" (libslurm: {said[0]})" if said else ""))
        self.kind = kind
        self.log = log


class PyslurmProcess:
    """A `python -m bridge.pyslurm_worker` child, started on first use and after every kill or crash."""

    def __init__(self, env: Mapping[str, str] | None = None, python: str = sys.executable) -> None:
        self._env = {**os.environ, **(env or {}), **COMMAND_ENV}
        # the child imports this very bridge package, whatever is installed
        package_root = str(Path(__file__).resolve().parent.parent)
        self._env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, self._env.get("PYTHONPATH")) if p)
        self._python = python
        self._proc: subprocess.Popen[bytes] | None = None
        # a file, not a pipe (a chatty libslurm never blocks on it), appended to whatever the reader's offset
        self._stderr = tempfile.TemporaryFile("a+b")
        self._lock = threading.Lock()  # one request at a time on the pipe
        self.started = 0  # how many children were started

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def call(self, op: str, *args: Any, timeout: float) -> Any:
        """The worker's answer to `op(*args)`; WorkerError, CommandTimeout or CommandError (child died)."""
        argv = ("pyslurm", op)
        log.debug("pyslurm %s %s", op, _brief(args))
        with self._lock:
            proc = self._ensure()
            mark = self._stderr.seek(0, os.SEEK_END)
            if mark > STDERR_KEPT:  # a long-lived worker's log: only each call's own part is ever read
                self._stderr.truncate(0)
                mark = 0
            deadline = time.monotonic() + timeout
            try:
                write_frame(proc.stdin, (op, args))  # type: ignore[arg-type]
                if not _readable(proc, deadline):
                    self._kill(f"{op} overran its {timeout:g} s timeout")
                    raise CommandTimeout(argv, None, "", self._tail(),
                                         f"pyslurm {op} gave no answer within {timeout:g} s: worker killed")
                reply = read_frame(proc.stdout)  # type: ignore[arg-type]
            except (EOFError, BrokenPipeError, OSError) as e:
                code = self._reap()
                raise CommandError(argv, code, "", self._tail(),
                                   f"the pyslurm worker exited during {op} (status {code}): {self._tail()}") from e
            if reply[0] == "ok":
                return reply[1]
            self._stderr.seek(mark)
            logged = self._stderr.read().decode(errors="replace").strip()
        raise WorkerError(argv, reply[1], reply[2], logged)

    def close(self) -> None:
        """End the child: stdin closed, killed if it lingers."""
        with self._lock:
            if self._proc is not None:
                try:
                    self._proc.stdin.close()  # type: ignore[union-attr]
                    self._proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    self._kill("it did not exit on close")
                self._proc = None

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stderr.seek(0)
        self._stderr.truncate()
        self._proc = subprocess.Popen([self._python, "-m", "bridge.pyslurm_worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, env=self._env)
        self.started += 1
        log.debug("pyslurm worker started, pid %d", self._proc.pid)
        return self._proc

    def _kill(self, why: str) -> None:
        proc = self._proc
        if proc is None:
            return
        log.warning("pyslurm worker %d killed: %s", proc.pid, why)
        proc.kill()
        proc.wait()
        self._proc = None

    def _reap(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _tail(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-3:])


def _readable(proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Whether the child's stdout has data (or EOF) before the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            return True


def _brief(args: Sequence[Any]) -> str:
    text = repr(args)
    return text if len(text) < 200 else text[:200] + "..."
