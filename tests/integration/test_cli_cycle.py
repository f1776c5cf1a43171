"""`beat-bridge submit` runs the cycle of `run --once` on the live cluster, as a user would, one call at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bridge_env import QUEUES, block

from bridge.devcluster.sandbox import write_config


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=120)


def test_submit_is_one_whole_cycle_submitting_then_settling(tmp_path, slurm_cluster):
    config = str(write_config(tmp_path, slurm_cluster.spec.slurm_conf, QUEUES))
    assert _cli("queues", "sync", "--config", config).returncode == 0
    declaration = tmp_path / "exp.json"
    declaration.write_text(json.dumps({"name": "by-hand", "author": "gina", "blocks": {"a": block("square", slots=2)}}))
    added = _cli("experiments", "add", str(declaration), "--schedule", "--config", config)
    assert added.returncode == 0, added.stderr

    first = _cli("submit", "--config", config)
    assert first.returncode == 0, first.stderr
    assert "submitted array" in first.stdout and "2 splits" in first.stdout, first.stdout

    seen, deadline = first.stdout, time.monotonic() + 90
    while "D 1/1 blocks done" not in _cli("experiments", "list", "--config", config).stdout:
        assert time.monotonic() < deadline, f"not done after 90 s; submit printed:\n{seen}"
        time.sleep(1)
        again = _cli("submit", "--config", config)  # the poll half of the same cycle settles the splits
        assert again.returncode == 0, again.stderr
        assert "submitted array" not in again.stdout  # nothing submitted twice
        seen += again.stdout
    assert seen.count(": done") == 2, seen
