"""`beat-bridge submit` whose database connection dies mid-cycle: one clear line and exit 1, no traceback;
the array Slurm accepted meanwhile is found by its tag on the next cycle, not submitted twice.

The fault is real and steered: the `submit` process is stopped (SIGSTOP) while its
sbatch child runs; once that child has exited (Slurm has the array, the bridge has
not recorded it) its own test database is closed (new connections refused, open
ones terminated) while the process is let go on. Closed, not only its backends
terminated: the submitter holds no connection across sbatch (issue 12: nothing is
read between claim and record), so a terminated idle connection is just replaced
(pool_pre_ping) and the array recorded, which is no database loss to report.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env
from faults import database_closed
from kill_windows import children
from poller_env import REPO, blocks, finished, run_loop, schedule, status, tagged_arrays, tags_by_block

pytestmark = pytest.mark.postgres


def stop_after_child(process: subprocess.Popen, command: str, timeout: float = 30.0) -> None:
    """SIGSTOP `process` as soon as its child `command` shows, and return once that child has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        child = next((c for c, (name, _) in children(process.pid).items() if name == command), None)
        if child is not None:
            os.kill(process.pid, signal.SIGSTOP)
            while time.monotonic() < deadline and children(process.pid).get(child, ("", "Z"))[1] != "Z":
                time.sleep(0.005)
            return
        time.sleep(0.001)
    raise AssertionError(f"no {command} child of {process.args} within {timeout:.0f} s")


def test_submit_losing_its_database_mid_cycle_says_so_in_one_line_and_the_next_cycle_loses_nothing(
        tmp_path, slurm_cluster, slurm, postgres_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=postgres_url)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, {"name": "submit-db-lost", "author": "judy", "blocks": {
        "a": block("square", slots=2, size=4),
    }})
    argv = [sys.executable, "-m", "bridge.cli", "submit", "--config", str(tmp_path / "bridge.toml")]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stop_after_child(process, "sbatch")
        with database_closed(postgres_url) as terminated:  # the record can neither keep nor get a connection
            os.kill(process.pid, signal.SIGCONT)
            out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)
            process.kill()
            process.communicate(timeout=60)
    assert terminated >= 1
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("beat-bridge: error:")]
    assert process.returncode == 1 and len(lines) == 1 and "database" in lines[0], (process.returncode, out, err)

    run_loop(env, finished(experiment_id), timeout=60)
    assert status(env, experiment_id) == "D"
    with env.sessions() as session:
        block_id = blocks(session, experiment_id)["a"].id
    tags = tags_by_block(env.config.spool_dir)
    records = tagged_arrays(slurm, since, tags, blocks=1, elements=2)
    assert Counter(tags[r.name] for r in records) == Counter({block_id: 2}), records  # one array of 2, once
