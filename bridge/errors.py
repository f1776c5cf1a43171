"""One error hierarchy for the whole bridge: every failure a user sees is a BridgeError."""

from __future__ import annotations

from collections.abc import Sequence


class BridgeError(Exception):
    """The bridge failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(BridgeError):
    """A configuration file is invalid."""


class ClusterError(BridgeError):
    """The local Slurm cluster could not be brought up, stopped or queried."""


class PollError(BridgeError):
    """Neither squeue nor sacct could be read: nothing was changed."""


class CommandError(BridgeError):
    """An external command failed."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        message: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = stderr.strip() or stdout.strip() or "no output"
        what = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(message or f"{argv[0]} {what}: {detail}")


class CommandTimeout(CommandError):
    """An external command did not finish in time."""
