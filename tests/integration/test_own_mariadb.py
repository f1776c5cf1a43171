"""Where no MariaDB answers, `cluster up` runs a private one in its state directory."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from required_parts import need

from bridge.devcluster import procs
from bridge.devcluster.conf import ClusterSpec
from bridge.devcluster.mariadb import OwnMariaDB, answers
from bridge.runner import LocalRunner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_private_mariadb_is_set_up_started_and_stopped(tmp_path: Path):
    if not os.path.exists("/usr/sbin/mariadbd"):
        need("mariadb-server", "/usr/sbin/mariadbd is missing")
    port = _free_port()
    own = OwnMariaDB(ClusterSpec(state_dir=tmp_path, hostname="h", mysql_port=port))
    assert not answers("127.0.0.1", port) and not own.owned()

    own.prepare(say=lambda line: None)
    assert own.owned()
    daemon = own.daemon()
    procs.start(daemon, {})
    try:
        deadline = time.monotonic() + 30
        while not answers("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        query = LocalRunner().run(
            ["mariadb", "-h", "127.0.0.1", "-P", str(port), "-u", "root", "-N", "-e", "select 41+1"], timeout=30
        )
        assert query.stdout.strip() == "42", query.stderr
    finally:
        assert procs.stop(daemon)
    assert not answers("127.0.0.1", port)
