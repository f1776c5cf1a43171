"""The `beat-bridge` command's entry point: a running daemon's socket first for short commands, else bridge.cli.

A served command (bridge.command_socket.SERVED) goes to the daemon running with
the same bridge.toml, which runs it with what it has loaded and sends back its
output and exit code (bridge.command_server): ~0.05 s instead of ~0.5 s of
imports. With no such daemon, or one that declines (another version, a changed
configuration, another user), the command runs here exactly as before: the
output, exit codes and database effects are the same either way. Set
BEAT_BRIDGE_NO_DAEMON=1 to always run here.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

from bridge import __version__
from bridge.command_socket import (
    PROTOCOL,
    STARTED,
    NotServed,
    config_argument,
    decode,
    encode,
    private_dir,
    read_all,
    runtime_dir,
    served_command,
    socket_path,
)

CONNECT_TIMEOUT = 1.0  # seconds to reach the daemon's socket; the command itself may take as long as it takes


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    answer = None if os.environ.get("BEAT_BRIDGE_NO_DAEMON") else ask_daemon(argv)
    if answer is None:
        from bridge.cli import main as run_here

        return run_here(argv)
    sys.stdout.write(answer.get("stdout", ""))
    sys.stdout.flush()
    sys.stderr.write(answer.get("stderr", ""))
    return int(answer.get("rc", 1))


def ask_daemon(argv: list[str]) -> dict | None:
    """The daemon's answer to a served command ({"rc", "stdout", "stderr"}), or None to run it here."""
    if served_command(argv) is None:
        return None
    directory, config = runtime_dir(), os.path.realpath(config_argument(argv))
    path = socket_path(config, directory)
    if not os.path.exists(path) or not private_dir(directory, create=False):
        return None
    request = {"protocol": PROTOCOL, "version": __version__, "argv": argv, "cwd": os.getcwd(), "config": config}
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(str(path))
    except OSError:
        return None  # no daemon listens: a stale socket
    with sock:
        try:
            sock.settimeout(None)
            sock.sendall(encode(request))
            sock.shutdown(socket.SHUT_WR)
            data = read_all(sock)
        except NotServed:
            return None  # a request too large to send: nothing was sent
        except OSError:
            data = b""
        except KeyboardInterrupt:
            print("beat-bridge: interrupted (the daemon finishes the command)", file=sys.stderr)
            return {"rc": 130}
    started = data.startswith(STARTED)
    if not started and not data.strip():
        return None  # closed before taking the command (stopping): nothing ran, so it runs here
    data = data[len(STARTED):] if started else data
    if not data:  # the daemon ended mid-command: whether it wrote is unknown, so never run it twice
        print("beat-bridge: error: the daemon ended before answering; `beat-bridge experiments list` shows "
              "what was committed", file=sys.stderr)
        return {"rc": 1}
    try:
        answer = decode(data)
    except NotServed:
        return {"rc": 1, "stderr": "beat-bridge: error: the daemon's answer was unreadable\n"}
    return None if answer.get("fallback") else answer


if __name__ == "__main__":
    sys.exit(main())
