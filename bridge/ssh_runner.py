"""The SSH runner: the command seam over one reused OpenSSH connection to the login node.

Same contract as LocalRunner (`run(argv, stdin=None, timeout=...) -> CommandResult`),
so callers never know which one ran. Key authentication only (no agent, no
password, no ~/.ssh key search); the server's host key must be in known_hosts
(paramiko RejectPolicy) unless the configuration explicitly allows unknown hosts.
The remote command is quoted once, with `shlex.join`, for a POSIX login shell.
Only this module imports paramiko.
"""

from __future__ import annotations

import logging
import re
import shlex
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import paramiko

from bridge.errors import BridgeError, CommandError, CommandTimeout
from bridge.runner import COMMAND_ENV, DEFAULT_TIMEOUT, CommandResult

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 32768
# A shell exits 126 (found, not executable) or 127 (not found) before the program runs:
# reported as CommandError, as LocalRunner does for the OSError of a missing program.
_NOT_RUN = (126, 127)
# The remote `timeout` fires this long after our deadline, so CommandTimeout is raised
# here first; then KILL if TERM was not enough.
_REMOTE_SLACK = 1.0
_KILL_AFTER = 5


class SshError(BridgeError):
    """The SSH connection to the cluster's login node failed."""


class UnknownHostKeyError(SshError):
    """The SSH server's host key is not in known_hosts."""


class HostKeyMismatchError(SshError):
    """The SSH server's host key differs from the one in known_hosts."""


class SshConnectionLost(CommandError):
    """The SSH connection was lost while a command ran; it may or may not have run."""


class _RefuseUnknown(paramiko.RejectPolicy):
    """RejectPolicy, with an error that names the host, port, key and known_hosts file."""

    def __init__(self, known_hosts: str) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise UnknownHostKeyError(
            f"unknown SSH host key for {hostname} ({key.get_name()} {key.fingerprint}): "
            f"it is not in {self.known_hosts}; check the fingerprint with the cluster's admins "
            f"and add the server's line to that file, or set allow_unknown_hosts = true in [ssh]"
        )


class _WarnUnknown(paramiko.WarningPolicy):
    """WarningPolicy through our logger: allowed only when the config says allow_unknown_hosts."""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        log.warning("accepting unknown SSH host key for %s (%s %s): allow_unknown_hosts is true",
                    hostname, key.get_name(), key.fingerprint)


class SshRunner:
    """Runs commands on a remote host over one SSH connection, reused across calls.

    The remote side needs a POSIX login shell and coreutils `timeout` (see command_line).
    """

    def __init__(
        self,
        host: str,
        port: int,
        user: str | None,
        key_file: str | Path | None,
        known_hosts: str | Path | None,
        allow_unknown_hosts: bool = False,
        connect_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if key_file is None:
            raise SshError(f"SSH to {host}:{port} needs a key_file: only key authentication is used")
        bad = [name for name in (env or {}) if not _ENV_NAME.match(name)]
        if bad:
            raise SshError(f"not an environment variable name: {bad[0]!r}")
        self.host, self.port, self.user = host, port, user
        self.key_file = Path(key_file)
        self.known_hosts = Path(known_hosts) if known_hosts is not None else None
        self.allow_unknown_hosts = allow_unknown_hosts
        self.connect_timeout = connect_timeout
        self.env = dict(env or {})
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()  # runs may share the connection from several threads

    @property
    def where(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.host}:{self.port}"

    def command_line(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT) -> str:
        """The one remote command string, every word quoted once by shlex.join:
        `timeout -k 5 T env VAR=value ... TZ=UTC argv` (bridge.runner.COMMAND_ENV last: env's last wins).

        coreutils `timeout` on the remote side ends the command (TERM, then KILL 5 s
        later) just after our own deadline: closing the channel does not stop a
        command that has no terminal, and OpenSSH refuses the SSH "signal" request
        for root sessions ("session signalling requires privilege separation",
        seen with OpenSSH 9.2), so without it a timed-out command could run forever.
        """
        argv = [str(a) for a in argv]
        if not argv or not argv[0] or "=" in argv[0]:
            # A first word with '=' would be read as an assignment by env.
            raise BridgeError(f"not a program name: {argv[:1]!r}")
        limit = ["timeout", "-k", str(_KILL_AFTER), f"{max(timeout, 0.0) + _REMOTE_SLACK:.3f}"]
        env = ["env", *(f"{k}={v}" for k, v in [*self.env.items(), *COMMAND_ENV.items()])]
        return shlex.join(limit + env + argv)

    # --- connection --------------------------------------------------------------------

    def _connect(self) -> paramiko.SSHClient:
        """A new authenticated client; every failure becomes an SshError naming host and cause."""
        if not self.key_file.is_file():
            raise SshError(f"SSH to {self.where}: key_file {self.key_file} does not exist or is not a file")
        client = paramiko.SSHClient()
        try:
            known = self._load_known_hosts(client)
            policy = _WarnUnknown() if self.allow_unknown_hosts else _RefuseUnknown(known)
            client.set_missing_host_key_policy(policy)
            client.connect(
                self.host, port=self.port, username=self.user, key_filename=str(self.key_file),
                timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout, channel_timeout=self.connect_timeout,
                allow_agent=False, look_for_keys=False,
            )
        except Exception as e:
            client.close()
            raise self._connect_error(e) from e
        log.info("connected over SSH to %s", self.where)
        return client

    def _load_known_hosts(self, client: paramiko.SSHClient) -> str:
        """Load the configured known_hosts (or the user's ~/.ssh/known_hosts); return its name."""
        if self.known_hosts is None:
            client.load_system_host_keys()
            return "~/.ssh/known_hosts"
        try:
            client.load_host_keys(str(self.known_hosts))
        except OSError as e:
            raise SshError(f"cannot read known_hosts file {self.known_hosts}: {e}") from e
        return str(self.known_hosts)

    def _connect_error(self, e: Exception) -> BridgeError:
        """The error a user sees for a failed connection: what failed, where, and what to check."""
        where = f"SSH to {self.where}"
        if isinstance(e, BridgeError):
            return e
        if isinstance(e, paramiko.BadHostKeyException):
            return HostKeyMismatchError(
                f"{where}: the server's host key ({e.key.get_name()} {e.key.fingerprint}) differs from "
                f"the one in {self.known_hosts or '~/.ssh/known_hosts'} ({e.expected_key.fingerprint}); "
                "refusing to connect (a changed key may mean the server was replaced or impersonated)"
            )
        if isinstance(e, paramiko.PasswordRequiredException):
            return SshError(f"{where}: key_file {self.key_file} needs a passphrase; use a key without one")
        if isinstance(e, paramiko.AuthenticationException):
            return SshError(f"{where}: key authentication with {self.key_file} failed: {e}")
        if isinstance(e, (socket.timeout, TimeoutError)):
            return SshError(f"{where}: no answer within {self.connect_timeout} s")
        if isinstance(e, (OSError, paramiko.SSHException, EOFError)):
            return SshError(f"{where}: cannot connect: {e or type(e).__name__}")
        return SshError(f"{where}: {type(e).__name__}: {e}")

    def _transport(self) -> paramiko.Transport:
        """The live transport, connecting (again) when there is none or it dropped."""
        with self._lock:
            client = self._client
            transport = client.get_transport() if client is not None else None
            if transport is None or not transport.is_active():
                if client is not None:
                    log.info("SSH connection to %s dropped; reconnecting", self.where)
                    client.close()
                self._client = None
                self._client = self._connect()
                transport = self._client.get_transport()
            assert transport is not None
            return transport

    def _open_channel(self) -> paramiko.Channel:
        """A session channel; reconnect once if the reused connection turns out dead.

        Retrying here is safe: no command has been sent yet on this channel.
        """
        for attempt in (1, 2):
            transport = self._transport()
            try:
                return transport.open_session(timeout=self.connect_timeout)
            except (paramiko.SSHException, EOFError, OSError) as e:
                transport.close()
                if attempt == 2:
                    raise SshError(f"SSH to {self.where}: cannot open a session: {e}") from e
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the connection (a later run reconnects)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> SshRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running -------------------------------------------------------------------------

    def run(
        self, argv: Sequence[str], stdin: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> CommandResult:
        """Run argv remotely; stdin is sent then closed; raise CommandTimeout after `timeout` s."""
        argv = tuple(str(a) for a in argv)
        command = self.command_line(argv, timeout)
        log.debug("ssh %s: %s", self.where, command)
        channel = self._open_channel()
        try:
            channel.exec_command(command)
            out, err, code = _exchange(channel, stdin, time.monotonic() + timeout)
            if code is None:
                raise CommandTimeout(argv, None, out, err)
        except (paramiko.SSHException, EOFError, OSError) as e:
            raise SshConnectionLost(
                argv, None, "", str(e), message=f"{argv[0]}: {SshConnectionLost.__doc__} ({self.where}: {e})"
            ) from e
        finally:
            channel.close()
        if code < 0:
            # No exit status: the connection closed under the command (killed session, network).
            raise SshConnectionLost(argv, None, out, err, message=f"{argv[0]}: {SshConnectionLost.__doc__}")
        if code in _NOT_RUN:
            raise CommandError(argv, code, out, err)
        return CommandResult(argv, code, out, err)


def _exchange(channel: paramiko.Channel, stdin: str | None, deadline: float) -> tuple[str, str, int | None]:
    """Feed stdin and drain stdout/stderr together (no deadlock on full windows).

    Returns (stdout, stderr, exit status), the status None when the deadline passed,
    -1 when the channel closed without one. OpenSSH may send the exit status before
    the last output, so we also wait for EOF.
    """
    pending = memoryview(stdin.encode()) if stdin is not None else memoryview(b"")
    out, err = bytearray(), bytearray()
    idle = 0.0005
    writing = True
    while True:
        moved = False
        if writing and pending and channel.send_ready():
            sent = channel.send(pending[:_CHUNK])
            pending, moved = pending[sent:], True
        if writing and not pending:
            channel.shutdown_write()
            writing = False
        while channel.recv_ready():
            out += channel.recv(_CHUNK)
            moved = True
        while channel.recv_stderr_ready():
            err += channel.recv_stderr(_CHUNK)
            moved = True
        if channel.exit_status_ready() and (channel.eof_received or channel.closed):
            if not (channel.recv_ready() or channel.recv_stderr_ready()):
                return _decode(out), _decode(err), channel.recv_exit_status()
        elif channel.closed:
            return _decode(out), _decode(err), -1
        if time.monotonic() > deadline:
            return _decode(out), _decode(err), None
        if moved:
            idle = 0.0005
        else:
            time.sleep(idle)
            idle = min(idle * 2, 0.02)


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode(errors="replace")
