"""systemd's readiness and watchdog protocol (sd_notify), spoken over its plain socket; a no-op elsewhere.

Under `Type=notify` systemd passes NOTIFY_SOCKET, the address of an AF_UNIX
datagram socket (a path, or `@name` for the abstract namespace), and with
`WatchdogSec=` WATCHDOG_USEC (and WATCHDOG_PID). The daemon sends newline-separated
assignments: READY=1 once started, WATCHDOG=1 at least once per WatchdogSec,
STATUS=<one line> for `systemctl status`, STOPPING=1 when it shuts down
(sd_notify(3), "Notes" for the protocol). The protocol is a dozen lines, so it is
spoken here directly instead of through a library.

A notification is a courtesy to the service manager: a failure to send one is
logged (a warning the first time) and never raised into the daemon's loop.
The watchdog is fed once per cycle, at most every WATCHDOG_USEC/2 (sd_watchdog_enabled(3)'s
advice); a cycle that hangs (a database call that never returns) stops feeding it,
and systemd restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

from bridge.values import printable

log = logging.getLogger(__name__)

ENV_NAMES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATUS_MAX = 200  # characters of a STATUS line kept; the error part is cut first


def socket_address(value: str | None) -> str | None:
    """NOTIFY_SOCKET as an AF_UNIX address: a path, or `@name` as the abstract `\\0name`; None if unusable."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # e.g. systemd 253's vsock:CID:PORT, not spoken here


def watchdog_seconds(environ: MutableMapping[str, str], pid: int) -> float | None:
    """The watchdog timeout systemd set for this process (WATCHDOG_USEC), or None when there is none."""
    usec, owner = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None  # set for another process (sd_watchdog_enabled(3))
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


def status_line(cycles: int, active: int | None, error: str | None, error_cycle: int | None) -> str:
    """STATUS= text: cycles run, active splits at the last poll, the last error and its cycle; one line."""
    seen = "Slurm not read" if active is None else f"{active} active split{'s' * (active != 1)}"
    head = f"cycle {cycles}: {seen}; last error: "
    if error is None:
        return head + "none"
    tail = f" (cycle {error_cycle})"
    text = printable(" ".join(error.split()))
    room = max(0, STATUS_MAX - len(head) - len(tail))
    return head + (text if len(text) <= room else text[:max(0, room - 3)] + "...") + tail


def watchdog_warning(timeout: float | None, max_interval: float) -> str | None:
    """Why the watchdog may fire on a healthy daemon, or None: it is fed per cycle, idle ones max_interval apart."""
    if timeout is None or max_interval < timeout / 2:
        return None
    return (f"WatchdogSec={timeout:g}s is fed once per cycle, but idle cycles are up to [poll] max_interval = "
            f"{max_interval:g} s apart: set WatchdogSec above twice that plus the longest cycle")


class Notifier:
    """Sends sd_notify messages to NOTIFY_SOCKET; every method is a no-op without one and never raises."""

    def __init__(self, address: str | None, watchdog: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.address, self.watchdog_timeout, self.clock = address, watchdog, clock
        self._socket: socket.socket | None = None
        self._fed: float | None = None  # clock() of the last WATCHDOG=1
        self._warned = False
        self.error: str | None = None  # the last error of a cycle, kept for STATUS
        self.error_cycle: int | None = None

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None, unset: bool = True) -> Notifier:
        """The notifier systemd's variables describe; `unset` removes them (Slurm commands and jobs never see them)."""
        environ = os.environ if environ is None else environ
        notifier = cls(socket_address(environ.get("NOTIFY_SOCKET")), watchdog_seconds(environ, os.getpid()))
        if environ.get("NOTIFY_SOCKET") and notifier.address is None:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract: systemd is not notified",
                        environ["NOTIFY_SOCKET"])
        if unset:
            for name in ENV_NAMES:
                environ.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str) -> bool:
        return self.send(f"READY=1\nSTATUS={status}")

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(f"STOPPING=1\nSTATUS={status}")

    def cycle(self, cycles: int, active: int | None, error: str | None) -> bool:
        """After each cycle: STATUS, and WATCHDOG=1 if half the watchdog timeout passed since the last one."""
        if error is not None:
            self.error, self.error_cycle = error, cycles
        fields = [f"STATUS={status_line(cycles, active, self.error, self.error_cycle)}"]
        now = self.clock()
        if self.watchdog_timeout and (self._fed is None or now - self._fed >= self.watchdog_timeout / 2):
            fields.insert(0, "WATCHDOG=1")
            self._fed = now
        return self.send("\n".join(fields))

    def send(self, message: str) -> bool:
        """One datagram to NOTIFY_SOCKET; False (logged) when there is none or it failed."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(message.encode(), self.address)
        except (OSError, ValueError) as e:  # ValueError: a NUL inside a path address
            level = logging.DEBUG if self._warned else logging.WARNING
            log.log(level, "systemd notification %r not sent to %s: %s", message.split("\n", 1)[0],
                    printable(self.address), e)
            self._warned = True
            return False
        log.debug("notified systemd: %s", message.replace("\n", "; "))
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
