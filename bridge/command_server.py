"""The daemon's side of bridge.command_socket: run short `beat-bridge` commands for other processes.

`beat-bridge run` starts one CommandServer. It listens on the Unix socket named
by its bridge.toml and runs each request, one at a time in its own thread, the
way bridge.cli would in a new process: the same argument parser, the same
handlers, the same error lines and exit codes. The handlers get an App of their
own (own engine, own sessions, own Slurm client, opened once), so their commits
reach the loop as another process's would (bridge.wake: it wakes at once), and
the loop's Slurm client is never shared across threads. What they print goes
back to the caller, not to the daemon's terminal or journal.

A request is declined, and the caller runs the command itself, when it comes
from another user (SO_PEERCRED), names another bridge.toml or protocol or
version, or when bridge.toml or queues.toml changed since the daemon loaded
them (a new process reads them afresh; so must the command).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import select
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from bridge import __version__
from bridge.command_socket import (
    PROTOCOL,
    STARTED,
    NotServed,
    decode,
    encode,
    private_dir,
    read_all,
    runtime_dir,
    served_command,
    socket_path,
)

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0  # seconds for a connected caller to send its request
ACCEPT_TICK = 0.5  # seconds between two looks at the stop flag while no one calls
_output: contextvars.ContextVar[tuple[TextIO, TextIO] | None] = contextvars.ContextVar("served_output", default=None)


class Routed(io.TextIOBase):
    """sys.stdout or sys.stderr: a served command's own buffer in its thread, the real stream elsewhere."""

    def __init__(self, real: TextIO, index: int) -> None:
        self.real, self.index = real, index

    def _target(self) -> TextIO:
        streams = _output.get()
        return self.real if streams is None else streams[self.index]

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return _output.get() is None and self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.real, "encoding", "utf-8")


class CommandServer:
    """One listening socket and its thread; `close()` stops both and removes the socket."""

    def __init__(self, config: Any, listener: socket.socket, path: Path) -> None:
        self.config, self.listener, self.path = config, listener, path
        self.served = self.declined = 0
        self._stop = threading.Event()
        self._app = None
        self._parser: Any = None  # built by _warm_up, before the first request is read
        self._files = _stamps(config)
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = Routed(sys.stdout, 0), Routed(sys.stderr, 1)
        self._thread = threading.Thread(target=self._serve, name="command-server", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, config: Any) -> CommandServer | None:
        """Listen for this configuration's commands; None (logged) when it cannot or another daemon does."""
        directory = runtime_dir()
        if not private_dir(directory, create=True):
            log.warning("commands are not served: %s is not a directory of this user closed to others "
                        "(set $BEAT_BRIDGE_RUNTIME_DIR)", directory)
            return None
        path = socket_path(config.path, directory)
        if _answers(path):
            log.warning("commands are not served: another daemon with %s listens on %s", config.path, path)
            return None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a daemon that was killed
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            os.chmod(path, 0o600)
            listener.listen(16)
        except OSError as e:
            listener.close()
            log.warning("commands are not served: cannot listen on %s: %s", path, e)
            return None
        log.info("serving short commands on %s", path)
        return cls(config, listener, path)

    def close(self) -> None:
        """Finish the command being run, stop listening, remove the socket."""
        self._stop.set()
        self._thread.join()
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sys.stdout, sys.stderr = self._streams
        if self._app is not None:
            self._app.sessions.kw["bind"].dispose()

    def _serve(self) -> None:
        self._warm_up()
        while not self._stop.is_set():
            readable, _, _ = select.select([self.listener], [], [], ACCEPT_TICK)
            if not readable:
                continue
            try:
                connection, _ = self.listener.accept()
            except OSError:
                continue
            with connection:
                try:
                    self._answer(connection)
                except Exception:  # a caller gone or a bug: logged, and the next caller is served
                    log.exception("a served command failed")

    def _warm_up(self) -> None:
        """Open the commands' App and build the parser before the first caller waits for them."""
        from bridge.cli import build_parser

        self._parser = build_parser()
        try:
            self.app  # noqa: B018 - opened now; a failure is met again, as an error line, by the first command
        except Exception as e:  # noqa: BLE001 - the database away at start: the commands say so when run
            log.debug("commands' database not opened yet: %s", e)

    def _answer(self, connection: socket.socket) -> None:
        try:
            request = self._request(connection)
        except NotServed as e:
            self.declined += 1
            log.debug("command not served: %s", e)
            with contextlib.suppress(OSError):
                connection.sendall(encode({"fallback": str(e)}))
            return
        except OSError:
            return  # the caller left first (a probe by another daemon at its start)
        connection.sendall(STARTED)
        rc, out, err = self.run(request["argv"], request["cwd"])
        self.served += 1
        connection.sendall(encode({"rc": rc, "stdout": out, "stderr": err}))

    def _request(self, connection: socket.socket) -> dict:
        """The caller's request, or NotServed saying why it runs the command itself."""
        uid = _peer_uid(connection)
        if uid != os.geteuid():
            raise NotServed(f"caller uid {uid} is not the daemon's {os.geteuid()}")
        connection.settimeout(READ_TIMEOUT)
        data = read_all(connection)
        if not data:
            raise OSError("no request")
        request = decode(data)
        connection.settimeout(None)
        if request.get("protocol") != PROTOCOL or request.get("version") != __version__:
            raise NotServed(f"protocol {request.get('protocol')} version {request.get('version')}, "
                            f"not {PROTOCOL} {__version__}")
        argv, cwd = request.get("argv"), request.get("cwd")
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and isinstance(cwd, str)):
            raise NotServed("argv or cwd missing")
        if served_command(argv) is None:
            raise NotServed(f"not a served command: {argv[:2]}")
        if request.get("config") != os.path.realpath(self.config.path):
            raise NotServed(f"another bridge.toml: {request.get('config')}")
        if _stamps(self.config) != self._files:
            raise NotServed("bridge.toml or queues.toml changed since the daemon loaded them")
        return request

    def run(self, argv: list[str], cwd: str) -> tuple[int, str, str]:
        """One command as bridge.cli.main runs it: exit code, stdout, stderr."""
        from bridge.cli import handle

        out, err = io.StringIO(), io.StringIO()
        token = _output.set((out, err))
        try:
            try:
                args = self._parser.parse_args(argv)
                args.served_app, args.cwd = self.app, Path(cwd)
                rc = handle(args)
            except SystemExit as e:  # argparse: --help or a usage error, already printed
                rc = e.code if isinstance(e.code, int) else 0 if e.code is None else 2
            except Exception as e:  # what the command process would have died of, as one line
                log.exception("served command %s failed", argv[:2])
                print(f"beat-bridge: error: {type(e).__name__}: {e}", file=sys.stderr)
                rc = 1
        finally:
            _output.reset(token)
        return rc, out.getvalue(), err.getvalue()

    @property
    def app(self):
        """The commands' App: the daemon's configuration with an engine and Slurm client of its own, made once."""
        if self._app is None:
            from bridge.app import App
            from bridge.preflight import open_database
            from bridge.wake import SENDER, SENDER_KEY

            # the daemon's configuration, loaded and checked once (requests decline once its files change)
            sessions = open_database(self.config.path, self.config.database_url)
            sessions.configure(info={SENDER_KEY: f"{SENDER}:commands"})  # their NOTIFYs wake this daemon's loop
            self._app = App(self.config, sessions)
        return self._app


def _stamps(config: Any) -> tuple:
    """What identifies bridge.toml's and queues.toml's contents cheaply: size and modification time."""
    stamps = []
    for path in (config.path, config.queues_file):
        try:
            info = os.stat(path)
            stamps.append((info.st_size, info.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def _peer_uid(connection: socket.socket) -> int:
    """The connected process's user id (Linux SO_PEERCRED: pid, uid, gid)."""
    data = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)[1]


def _answers(path: Path) -> bool:
    """Whether a process listens on the socket at `path`."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
