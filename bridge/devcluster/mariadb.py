"""MariaDB for slurmdbd: use the one answering on the configured port, else start our own.

The python-svc machines run MariaDB on 127.0.0.1:3306 already; a bare Debian 12
machine does not, so there `cluster up` installs mariadb-server and runs a private
instance inside the cluster's state directory, as root (the state directory may sit
under /root, which the mysql user cannot enter).
"""

from __future__ import annotations

import os
import socket
from typing import Callable

from bridge.devcluster import procs
from bridge.devcluster.conf import ClusterSpec
from bridge.devcluster.packages import install_packages
from bridge.errors import ClusterError, CommandError
from bridge.runner import LocalRunner


def answers(host: str, port: int, timeout: float = 1.0, greets: bool = True) -> bool:
    """True if a server accepts a TCP connection on host:port (and greets first, as MariaDB does)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return not greets or bool(conn.recv(1))
    except OSError:
        return False


class OwnMariaDB:
    """A private MariaDB in <state>/mysql, started only when none answers on the spec's port."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.home = spec.state_dir / "mysql"

    def owned(self) -> bool:
        """True once we have set up our own instance in this state directory."""
        return (self.home / "data" / "mysql").is_dir()

    def daemon(self) -> procs.Daemon:
        h, s = self.home, self.spec
        argv = procs.argv_of(
            self._binary("mariadbd"), "--no-defaults", "--user=root", f"--datadir={h / 'data'}",
            f"--socket={h / 'mysqld.sock'}", f"--port={s.mysql_port}", "--bind-address=127.0.0.1",
            f"--pid-file={h / 'mariadbd.daemon.pid'}", "--skip-log-bin",
        )
        return procs.Daemon("mariadb", argv, s.run_dir / "mariadb.pid", s.log_dir / "mariadb.out")

    def prepare(self, say: Callable[[str], None]) -> None:
        """Install mariadb-server if needed and create an empty data directory."""
        if self.spec.mysql_host not in ("127.0.0.1", "localhost"):
            raise ClusterError(
                f"no MariaDB answers on {self.spec.mysql_host}:{self.spec.mysql_port}; "
                "start it, or use 127.0.0.1 so that cluster up can run its own"
            )
        say(f"no MariaDB answers on 127.0.0.1:{self.spec.mysql_port}: setting up our own in {self.home}")
        runner = LocalRunner(env={"DEBIAN_FRONTEND": "noninteractive"})
        if not os.path.exists("/usr/sbin/mariadbd") and os.path.exists("/usr/bin/apt-get"):
            install_packages(["mariadb-server"], runner, say)
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [self._binary("mariadb-install-db"), "--no-defaults", "--user=root",
                f"--datadir={self.home / 'data'}", "--auth-root-authentication-method=normal",
                "--skip-test-db"]
        try:
            runner.run(argv, timeout=300).check()
        except CommandError as e:
            raise ClusterError(f"could not initialise MariaDB in {self.home}: {e}") from e

    @staticmethod
    def _binary(name: str) -> str:
        for folder in ("/usr/sbin", "/usr/bin"):
            if os.path.exists(f"{folder}/{name}"):
                return f"{folder}/{name}"
        return name
