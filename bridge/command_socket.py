"""Where a running daemon serves short commands, and what one request and its answer look like.

`beat-bridge run` has SQLAlchemy, the mappers and the configuration loaded
already; a new `beat-bridge experiments list` process would spend ~0.5 s
importing them again. So the daemon listens on a Unix socket
(bridge.command_server) and the `beat-bridge` command (bridge.entry) sends it
the short commands (SERVED), falling back to running them itself when no daemon
of the same bridge.toml answers. Standard library only: this module is on the
command's start-up path.

The socket is named by the bridge.toml it serves (a hash of its real path), in a
directory only this user can enter:
  1. $BEAT_BRIDGE_RUNTIME_DIR, when set;
  2. /run/beat-bridge, when it exists and belongs to this user (systemd's
     RuntimeDirectory= for the service, visible to a login shell, unlike the
     unit's PrivateTmp /tmp);
  3. /tmp/beat-bridge-<uid>.
A directory that another user owns, or that others may enter, is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.config_path import resolve_config_path

PROTOCOL = 1
RUNTIME_ENV = "BEAT_BRIDGE_RUNTIME_DIR"
SYSTEM_RUNTIME = Path("/run/beat-bridge")
STARTED = b"+"  # the daemon's first byte once it runs the command: from then on it is never run twice
MAX_MESSAGE = 4 * 1024 * 1024  # bytes of one request or answer
# The commands a daemon runs for the `beat-bridge` command: short, no terminal, no stdin.
SERVED = {("experiments", "add"), ("experiments", "schedule"), ("experiments", "cancel"),
          ("experiments", "list"), ("experiments", "show"), ("status",)}
LOCAL_FLAGS = {"-h", "--help", "-v", "--verbose"}  # these run in the command's own process


class NotServed(Exception):
    """The daemon will not run this request; the command runs it itself (the reason is logged at DEBUG)."""


def runtime_dir(environ: Mapping[str, str] | None = None, uid: int | None = None) -> Path:
    """The directory of this user's command sockets (the module's docstring gives the order)."""
    environ = os.environ if environ is None else environ
    uid = os.geteuid() if uid is None else uid
    if environ.get(RUNTIME_ENV):
        return Path(environ[RUNTIME_ENV])
    try:
        if SYSTEM_RUNTIME.stat().st_uid == uid:
            return SYSTEM_RUNTIME
    except OSError:
        pass
    return Path(f"/tmp/beat-bridge-{uid}")


def private_dir(path: Path, create: bool) -> bool:
    """Whether `path` is a directory of this user that no one else may enter (made 0700 with `create`)."""
    if create:
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            return False
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077


def socket_path(config_file: str | Path, directory: Path | None = None) -> Path:
    """The socket of the daemon running with this bridge.toml (by its real path)."""
    real = os.path.realpath(config_file)
    name = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return (runtime_dir() if directory is None else directory) / f"{name}.sock"


def served_command(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The served command argv names (("experiments", "list"), ...), or None when it runs locally."""
    if any(arg in LOCAL_FLAGS for arg in argv):
        return None
    words = tuple(argv[:2])
    for command in SERVED:
        if words[:len(command)] == command:
            if command == ("experiments", "add") and "-" in argv[2:]:
                return None  # a declaration on stdin stays with the process that has the stdin
            return command
    return None


def config_argument(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Path:
    """The bridge.toml a command names: its --config, resolved as bridge.config does (env, default)."""
    named = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            named = argv[i + 1]
            break
        if arg.startswith("--config="):
            named = arg.split("=", 1)[1]
            break
    return resolve_config_path(named, environ)


def encode(message: Mapping[str, object]) -> bytes:
    data = json.dumps(message).encode("utf-8", "surrogateescape")
    if len(data) > MAX_MESSAGE:
        raise NotServed(f"message of {len(data)} bytes, over {MAX_MESSAGE}")
    return data


def decode(data: bytes) -> dict:
    try:
        message = json.loads(data.decode("utf-8", "surrogateescape"))
    except ValueError as e:
        raise NotServed(f"not a JSON message: {e}") from e
    if not isinstance(message, dict):
        raise NotServed("not a JSON object")
    return message


def read_all(sock) -> bytes:
    """Everything the peer sends until it shuts its side down, at most MAX_MESSAGE bytes."""
    chunks, size = [], 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_MESSAGE:
            raise NotServed(f"message over {MAX_MESSAGE} bytes")
        chunks.append(chunk)
