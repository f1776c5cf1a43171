"""bridge.notify: systemd's notify protocol, received by a real AF_UNIX datagram socket (path and abstract)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from bridge.notify import STATUS_MAX, Notifier, socket_address, status_line, watchdog_seconds, watchdog_warning


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path: Path):
    """A datagram socket as systemd's: (the NOTIFY_SOCKET value, the socket)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        value = str(tmp_path / "notify.sock")
        sock.bind(value)
    else:
        value = f"@bb-test-{uuid.uuid4().hex}"
        sock.bind("\0" + value[1:])
    sock.settimeout(5)
    yield value, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    """Every datagram waiting on the socket, as text."""
    sock.setblocking(False)
    messages = []
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(5)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ready_cycle_and_stopping_arrive_as_systemd_reads_them(listener):
    value, sock = listener
    env = {"NOTIFY_SOCKET": value, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid()), "KEEP": "1"}
    notifier = Notifier.from_environ(env)
    assert env == {"KEEP": "1"}  # systemd's variables are not passed on to Slurm commands and jobs
    assert notifier.watchdog_timeout == 4.0
    assert notifier.ready("started")
    assert sock.recv(4096) == b"READY=1\nSTATUS=started"
    notifier.cycle(1, 3, None)
    assert sock.recv(4096) == b"WATCHDOG=1\nSTATUS=cycle 1: 3 active splits; last error: none"
    notifier.stopping("bye")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=bye"
    notifier.close()


def test_the_watchdog_is_fed_at_most_every_half_timeout_and_status_keeps_the_last_error(listener):
    value, sock = listener
    clock = Clock()
    notifier = Notifier(socket_address(value), watchdog=4.0, clock=clock)
    notifier.cycle(1, 2, None)
    clock.now += 1.9
    notifier.cycle(2, 1, "database error, connection lost: OperationalError: gone\nsecond line")
    clock.now += 0.1  # 2.0 s after the first feed: half the timeout
    notifier.cycle(3, 0, None)
    clock.now += 0.5
    notifier.cycle(4, None, None)
    assert received(sock) == [
        "WATCHDOG=1\nSTATUS=cycle 1: 2 active splits; last error: none",
        "STATUS=cycle 2: 1 active split; last error: database error, connection lost: OperationalError: gone "
        "second line (cycle 2)",
        "WATCHDOG=1\nSTATUS=cycle 3: 0 active splits; last error: database error, connection lost: "
        "OperationalError: gone second line (cycle 2)",
        "STATUS=cycle 4: Slurm not read; last error: database error, connection lost: OperationalError: gone "
        "second line (cycle 2)",
    ]


def test_without_notify_socket_nothing_is_sent_and_nothing_raised():
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.ready("x") is False and notifier.cycle(1, 0, "boom") is False and notifier.stopping() is False


def test_a_vanished_socket_is_logged_once_as_a_warning_and_never_raised(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "gone.sock"), watchdog=1.0)
    with caplog.at_level("DEBUG", logger="bridge.notify"):
        assert notifier.cycle(1, 0, None) is False
        assert notifier.cycle(2, 0, None) is False
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "gone.sock" in warnings[0].getMessage(), caplog.text


def test_notify_socket_values():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract/name") == "\0abstract/name"
    assert socket_address("vsock:2:1234") is None and socket_address("") is None and socket_address(None) is None


def test_watchdog_only_for_this_process_and_a_positive_timeout():
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}, 7) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 7) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, 7) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}, 7) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}, 7) is None
    assert watchdog_seconds({}, 7) is None


def test_status_is_one_bounded_escaped_line():
    line = status_line(9, 1, "boom\x1b[31m " + "x" * 500, 8)
    assert "\n" not in line and "\x1b" not in line and "\\x1b" in line
    assert len(line) <= STATUS_MAX and line.endswith("... (cycle 8)"), line


def test_a_watchdog_shorter_than_twice_the_idle_interval_is_warned_about():
    assert watchdog_warning(None, 15.0) is None
    assert watchdog_warning(600.0, 15.0) is None
    assert "max_interval = 15 s" in watchdog_warning(20.0, 15.0)
