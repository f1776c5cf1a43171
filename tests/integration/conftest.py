"""A real OpenSSH server on loopback for the SSH runner, and `any_runner`: each test on both runners.

The server runs from a temp dir with its own host key, its own authorized user key
and its own log (../shared/slurm-notes.md, "A real OpenSSH server"). Commands over
it reach the same local Slurm cluster as the LocalRunner (SLURM_CONF is passed in
the remote command's environment).
"""

from __future__ import annotations

import getpass
import importlib.util
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.ssh_runner import SshRunner


def _root_conftest():
    """tests/conftest.py as a module. `from conftest import need` cannot work here:
    every conftest.py outside a package is imported as "conftest", so inside this
    file that name is this file itself."""
    path = Path(__file__).resolve().parent.parent / "conftest.py"
    spec = importlib.util.spec_from_file_location("bridge_tests_root_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Re-exported: test modules here that do `from conftest import need` get this file.
need = _root_conftest().need

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class Sshd:
    """A running sshd: where it listens, the keys to reach it and its log."""

    port: int
    key_file: Path
    known_hosts: Path
    host_key_line: str
    log: Path
    dir: Path
    user: str

    def runner(self, **overrides) -> SshRunner:
        kwargs = dict(host="127.0.0.1", port=self.port, user=self.user, key_file=self.key_file,
                      known_hosts=self.known_hosts, connect_timeout=10.0)
        kwargs.update(overrides)
        return SshRunner(**kwargs)

    def accepted_logins(self) -> int:
        """How many SSH connections sshd has authenticated so far (one per connection)."""
        return self.log.read_text(errors="replace").count("Accepted publickey")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "beat-bridge-test", "-f", str(path)],
                   check=True, capture_output=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _write_config(d: Path, port: int) -> Path:
    config = d / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        f"PidFile {d / 'sshd.pid'}",
        "StrictModes no",
        "UsePAM no",
        "LogLevel INFO",
        "",
    ]))
    return config


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """An OpenSSH server on 127.0.0.1, a free high port, stopped by its pid file at the end."""
    if not SSHD.exists():
        need("sshd", "openssh-server is not installed (apt-get install -y openssh-server; scripts/setup.sh does it)")
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "user_key")
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    port = _free_port()
    config = _write_config(d, port)
    try:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir
    except OSError as e:
        need("sshd", f"cannot create /run/sshd: {e}")
    log = d / "sshd.log"
    started = subprocess.run([str(SSHD), "-f", str(config), "-E", str(log)], capture_output=True, text=True)
    if started.returncode != 0:
        need("sshd", f"{SSHD} exited {started.returncode}: {started.stderr.strip()} "
                     f"{log.read_text() if log.exists() else ''}")
    deadline = time.monotonic() + 15
    while not _answers(port):
        if time.monotonic() > deadline:
            need("sshd", f"no SSH banner on 127.0.0.1:{port} within 15 s; log: {log.read_text()}")
        time.sleep(0.1)
    key_type, key_b64 = (d / "host_key.pub").read_text().split()[:2]
    line = f"[127.0.0.1]:{port} {key_type} {key_b64}"
    (d / "known_hosts").write_text(line + "\n")
    try:
        yield Sshd(port, d / "user_key", d / "known_hosts", line, log, d, getpass.getuser())
    finally:
        pid_file = d / "sshd.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass


@pytest.fixture(scope="session")
def ssh_runner(sshd: Sshd, slurm_cluster) -> Iterator[SshRunner]:
    """An SshRunner to the loopback sshd whose commands see the local cluster (SLURM_CONF)."""
    runner = sshd.runner(env=slurm_cluster.spec.env())
    yield runner
    runner.close()


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.sshd)])
def any_runner(request: pytest.FixtureRequest, slurm):
    """The same test through the LocalRunner and through the SshRunner, both on the real cluster."""
    if request.param == "ssh":
        return request.getfixturevalue("ssh_runner")
    return slurm


@pytest.fixture(params=["cli", "pyslurm"])
def slurm_client(request: pytest.FixtureRequest) -> str:
    """The same test through the CLI client (Slurm's commands) and the pyslurm client (libslurm in a worker).

    Pass it to make_env(client=...); a missing or mismatched pyslurm is need()ed there.
    """
    return request.param


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the loopback sshd with `sshd`."""
    for item in items:
        if {"sshd", "ssh_runner"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.sshd)
