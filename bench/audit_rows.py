"""`beat-bridge audit` over a large history, against the bare read of the same rows; and snapshot sacct calls.

1. N accounting snapshots (default 100,000) in a fresh SQLite database, over
   two authors, three queues, twenty experiments, several states. Timed, median
   of ROUNDS: the audit in-process (read, group, table) and the whole command as
   a user runs it (`python -m bridge.cli audit`, a new process); the baseline is
   the bare read of the same rows with Python's sqlite3 (`SELECT *`, fetchall).
   Target: the command under 2 s.
2. With the local cluster: one refresh round of 1,201 pending snapshots through
   the real sacct, counting sacct calls. Target: at most one per 500 elements.
Usage: python bench/audit_rows.py [rows]
"""

from __future__ import annotations

import math
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from common import cluster, median_seconds
from sqlalchemy import insert

from bridge.audit import audit
from bridge.audit_format import to_table
from bridge.audit_query import load
from bridge.config import load_config
from bridge.models_audit import AccountingSnapshot
from bridge.preflight import open_database
from bridge.runner import LocalRunner
from bridge.slurm_client import USAGE_CHUNK, SlurmClient
from bridge.snapshots import refresh

REPO = Path(__file__).resolve().parent.parent
ROUNDS = 5
T0 = datetime(2026, 11, 1)
STATES = [("COMPLETED", "0:0")] * 16 + [("FAILED", "1:0"), ("TIMEOUT", "0:15"), ("OUT_OF_MEMORY", "0:125"),
                                        ("CANCELLED by 0", "0:0")]


def rows(n: int) -> list[dict]:
    out = []
    for i in range(n):
        state, code = STATES[i % len(STATES)]
        submit = T0 + timedelta(seconds=20 * i)
        out.append(dict(
            split_id=i, split_status="C" if state == "COMPLETED" else "F", experiment_id=i % 20,
            experiment_name=f"exp{i % 20}", author=("bob", "amy")[i % 2], block_name=f"b{i % 7}",
            queue_name=("default", "long", "debug")[i % 3], mapping_version="abc", algorithm=f"pkg.mod:f{i % 5}",
            submission_tag=f"bb-{i}", array_job_id=1000 + i // 1000, element_id=f"{1000 + i // 1000}_{i % 1000}",
            status="complete", first_seen=submit, attempts=1, partition="cpu", account="root", qos="normal",
            node_list=("n1", "n2")[i % 2], alloc_cpus=1 + i % 4, req_mem_mb=1000, max_rss_kb=50_000 + i % 900_000,
            total_cpu_s=float(i % 600), elapsed_s=i % 3600, timelimit_min=60, submit=submit, eligible=submit,
            start=submit + timedelta(seconds=i % 30), end=submit + timedelta(seconds=30 + i % 3600),
            state=state, exit_code=code))
    return out


def workdir(n: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="beat-bench-audit-"))
    (root / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, root / "config" / name)
    config = load_config(root / "config" / "bridge.toml")
    sessions = open_database(config.path, config.database_url)
    with sessions() as session:
        made = rows(n)
        for start in range(0, n, 20_000):
            session.execute(insert(AccountingSnapshot), made[start:start + 20_000])
        session.commit()
    return root


def audit_figures(n: int) -> None:
    root = workdir(n)
    config = load_config(root / "config" / "bridge.toml")
    sessions = open_database(config.path, config.database_url)
    since, until = T0, T0 + timedelta(days=400)
    database = str(config.database_url).removeprefix("sqlite:///")

    def in_process():
        with sessions() as session:  # as the command does: times not read (the figures do not need them)
            assert audit(load(session, since, until, times=False), "queue", since, until).total.elements == n
            to_table(audit(load(session, since, until, times=False), "experiment", since, until))

    def command():
        done = subprocess.run([sys.executable, "-m", "bridge.cli", "audit", "--since", "2026-11-01", "--until",
                               "2027-12-01", "--by", "queue", "--config", "config/bridge.toml"],
                              cwd=root, capture_output=True, text=True, check=True)
        assert f"total  {n:>8}".replace(" ", "") in done.stdout.replace(" ", ""), done.stdout

    def bare():
        with sqlite3.connect(database) as connection:
            assert len(connection.execute("SELECT * FROM accounting_snapshots").fetchall()) == n

    base = median_seconds(bare, ROUNDS)
    ours = median_seconds(in_process, ROUNDS) / 2  # two audits per call: by queue and by experiment
    whole = median_seconds(command, ROUNDS)
    print(f"audit_rows {n}: in-process audit {ours:.3f} s, `beat-bridge audit` command {whole:.3f} s, "
          f"bare sqlite3 read {base:.3f} s")
    print(f"audit_rows {n}: ratio in-process/bare {ours / base:.2f}, command/bare {whole / base:.2f}; "
          f"target command < 2 s: {'met' if whole < 2 else 'MISSED'}")


def snapshot_calls(n: int = 1201) -> None:
    local = cluster()
    calls: list[list[str]] = []

    class Counting(LocalRunner):
        def run(self, argv, stdin=None, timeout=60.0):
            if argv and argv[0] == "sacct":
                calls.append(list(argv))
            return super().run(argv, stdin=stdin, timeout=timeout)

    root = workdir(0)
    config = load_config(root / "config" / "bridge.toml")
    sessions = open_database(config.path, config.database_url)
    now = datetime.utcnow().replace(microsecond=0)
    with sessions() as session:
        session.execute(insert(AccountingSnapshot), [dict(row, status="pending", first_seen=now - timedelta(minutes=1),
                                                          last_attempt=None, start=now, submit=now)
                                                     for row in rows(n)])
        session.commit()
        client = SlurmClient(Counting(env={"SLURM_CONF": str(local.spec.slurm_conf)}))
        round_ = refresh(session, client, now)
    allowed = math.ceil(n / USAGE_CHUNK)
    print(f"snapshot sacct calls for {n} settled elements: {len(calls)} (at most {allowed} allowed: one per "
          f"{USAGE_CHUNK}); round due {round_.due}: {'met' if len(calls) <= allowed else 'MISSED'}")


if __name__ == "__main__":
    audit_figures(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    snapshot_calls()
