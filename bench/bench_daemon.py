"""What the benchmarks need around a bridge: `beat-bridge run`'s peak memory, a PostgreSQL database of their own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

ADMIN_URL = os.environ.get("BRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def daemon_peak_rss(env, seconds: float = 10.0) -> int:
    """`beat-bridge run` on the sandbox's configuration for `seconds`: its peak RSS in kB (VmHWM), then SIGTERM."""
    config = env.root / "bridge.toml"
    with open(env.root / "daemon.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=log)
        try:
            time.sleep(seconds)
            peak = _vm_hwm(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    if peak is None:
        raise RuntimeError(f"beat-bridge run ended early: see {env.root / 'daemon.log'}")
    return peak


def _vm_hwm(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def postgres_database(enabled: bool) -> Iterator[str | None]:
    """A fresh PostgreSQL database's URL (dropped afterwards), or None (SQLite) when not enabled."""
    if not enabled:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(ADMIN_URL)
    admin = psycopg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                            dbname=url.database, autocommit=True)
    name = f"bb_bench_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
