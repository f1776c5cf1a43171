"""`beat-bridge` commands answered by the running daemon start new work at once, on SQLite and PostgreSQL.

The daemon polls Slurm every 60 s here, so work that runs to D before its next
poll was started by the served `experiments add --schedule` waking the loop: on
SQLite by data_version (the commands' own engine), on PostgreSQL by their NOTIFY,
which must not carry the loop's own sender name (it would be ignored).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta

from bridge_env import block, make_env
from poller_env import start_run, status, wait_for
from sqlalchemy import select
from test_wake_live import SLOW_POLL, _idle_beat

from bridge.command_socket import socket_path
from bridge.models import StateHistory


def _command(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `beat-bridge` console script's main (bridge.entry), as a user runs it."""
    return subprocess.run([sys.executable, "-m", "bridge.entry", *args, "--config", str(tmp_path / "bridge.toml")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_served_add_starts_work_before_the_idle_daemons_next_poll(tmp_path, slurm_cluster, slurm, db_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=db_url, extra=SLOW_POLL)
    (tmp_path / "two.json").write_text(json.dumps({"name": "served", "author": "ann", "blocks": {
        "a": block("scale", slots=2, size=4, parameters={"factor": 3}),
        "b": block("square", slots=1, inputs={"in": {"block": "a", "output": "out"}})}}))
    with open(tmp_path / "run.log", "ab") as log:
        run = start_run(tmp_path, log)
        try:
            idle = _idle_beat(env)
            due = idle.beat_at + timedelta(seconds=idle.next_in_s)
            added = _command(tmp_path, "experiments", "add", "two.json", "--schedule")
            assert added.returncode == 0, added.stderr
            assert added.stdout.splitlines()[0] == "added experiment 1 ann/served from two.json"
            wait_for("the experiment final", lambda: status(env, 1) in "DF", timeout=55, every=0.2)
            listed = _command(tmp_path, "experiments", "list", "--json")
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(timeout=20)
    text = (tmp_path / "run.log").read_text()
    assert code == 0, text[-3000:]
    assert "P -> S (schedule_experiment)" in text, "the add was not run by the daemon: " + text[-3000:]
    assert status(env, 1) == "D", text[-3000:]
    assert json.loads(listed.stdout)[0]["status"] == "D"
    with env.sessions() as session:
        ended = session.scalar(select(StateHistory.at).where(StateHistory.entity == "experiments")
                               .order_by(StateHistory.id.desc()).limit(1))
    assert ended < due, (ended, due)  # woken by the served command's commit, not by the next poll
    assert not socket_path(tmp_path / "bridge.toml").exists()  # removed at SIGTERM
