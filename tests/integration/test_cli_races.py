"""The web server's side writes while `beat-bridge run` cycles: 20 `experiments add` / `cancel` commands,
four at a time, race a running daemon on SQLite and on PostgreSQL. None may fail, none may print a traceback,
and every experiment they added is there and ends as it should.

On SQLite a writer that read first (a deferred transaction) cannot upgrade to a
write once the daemon has committed since its read: SQLite answers "database is
locked" at once, without waiting for the busy timeout (SQLITE_BUSY_SNAPSHOT,
https://www.sqlite.org/rescode.html#busy_snapshot). The daemon commits at least
once a cycle, every 0.3 s here.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bridge_env import block, make_env
from poller_env import POLL, REPO, start_run, status, wait_for

ADDS, CANCELS = 12, 8  # 20 commands: every add schedules; the first 8 experiments are cancelled right away


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def _declaration(root: Path, n: int) -> Path:
    """A one-split experiment: long enough to be cancelled while live, else a square of two numbers."""
    algorithm = block("sleep_then_copy", slots=1, size=2, parameters={"seconds": 20}) if n < CANCELS \
        else block("square", slots=1, size=2, parameters={"n": n})
    path = root / f"race-{n}.json"
    path.write_text(json.dumps({"name": f"race-{n}", "author": "paula", "blocks": {"a": algorithm}}))
    return path


def _add_then_cancel(config: str, path: Path, cancel: bool) -> list[tuple[list[str], subprocess.CompletedProcess]]:
    args = ["experiments", "add", str(path), "--schedule", "--config", config]
    done = [(args, _cli(*args))]
    added = re.search(r"added experiment (\d+)", done[0][1].stdout)
    if cancel and added:
        args = ["experiments", "cancel", added.group(1), "--config", config]
        done.append((args, _cli(*args)))
    return done


def test_twenty_cli_writes_racing_a_running_daemon_all_succeed(tmp_path, slurm_cluster, slurm, db_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=db_url, extra=POLL)
    config = str(tmp_path / "bridge.toml")
    paths = [_declaration(tmp_path, n) for n in range(ADDS)]
    log_path = tmp_path / "run.log"
    with open(log_path, "ab") as log:
        daemon = start_run(tmp_path, log)
        try:
            wait_for("the daemon cycling", lambda: "bridge running" in log_path.read_text(), timeout=30, every=0.2)
            with ThreadPoolExecutor(4) as pool:
                runs = [c for done in pool.map(lambda n: _add_then_cancel(config, paths[n], n < CANCELS),
                                               range(ADDS)) for c in done]
            failed = [(args, r.returncode, r.stderr[-2000:]) for args, r in runs
                      if r.returncode != 0 or "Traceback" in r.stderr]
            assert failed == [], failed
            ids = {f"race-{n}": _experiment_id(env, f"race-{n}") for n in range(ADDS)}
            wait_for("every experiment settled", lambda: [status(env, ids[f"race-{n}"]) for n in range(ADDS)] == (
                ["P"] * CANCELS + ["D"] * (ADDS - CANCELS)), timeout=90)
        finally:
            daemon.send_signal(signal.SIGTERM)
            code = daemon.wait(timeout=30)

    assert len(runs) == ADDS + CANCELS, [args for args, _ in runs]
    assert sum("cancelling experiment" in r.stdout for _, r in runs) == CANCELS
    text = log_path.read_text()
    assert code == 0 and "Traceback" not in text, text[-3000:]


def _experiment_id(env, name: str) -> int:
    from sqlalchemy import select

    from bridge.models import Experiment

    with env.sessions() as session:
        found = session.scalar(select(Experiment.id).where(Experiment.name == name))
    assert found is not None, f"experiment {name} is missing"
    return found
