"""The one command seam: run an argv list, get back exit code, stdout and stderr.

Every external command of the bridge (sbatch, sacct, scancel, scontrol, sinfo)
goes through an object with this one method, so the local runner, the SSH runner
and a fault-injecting test runner are interchangeable. Only runner modules import
subprocess or paramiko.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import CommandError, CommandTimeout

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
# Every command runs in UTC, whatever the host's or the configuration's TZ: sacct and squeue print
# Submit/Start/End, and read sacct's -S/-E, in their own process's time zone, and the bridge
# stores naive UTC (bridge.models.utcnow). Set last, so nothing overrides it.
COMMAND_ENV = {"TZ": "UTC"}


@dataclass(frozen=True)
class CommandResult:
    """What a finished command gave back."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> CommandResult:
        """Return self, or raise CommandError when the command failed."""
        if self.returncode != 0:
            raise CommandError(self.argv, self.returncode, self.stdout, self.stderr)
        return self


class Runner(Protocol):
    """Runs one command; raises CommandTimeout when it does not finish in time."""

    def run(
        self, argv: Sequence[str], stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> CommandResult: ...


class LocalRunner:
    """Runs commands on this machine with subprocess, never through a shell, in UTC (COMMAND_ENV)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = {**os.environ, **(env or {}), **COMMAND_ENV}

    def run(
        self, argv: Sequence[str], stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        log.debug("run %s", argv)
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self._env,
                stdin=None if stdin is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise CommandTimeout(argv, None, _text(e.stdout), _text(e.stderr)) from e
        except OSError as e:
            raise CommandError(argv, 127, "", str(e)) from e
        return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data
