"""`beat-bridge cluster up` is idempotent and `down` leaves no Slurm or munge process behind.

Runs the real command in a subprocess, as a user would; brings the cluster back up
at the end so that tests after it find it running.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.devcluster import procs

# Takes the shared cluster down: no other test may run meanwhile (tests/phases.py).
pytestmark = pytest.mark.exclusive("takes the shared cluster down and up again")

pytestmark = pytest.mark.exclusive("takes the shared cluster down and up again")

OURS = {"munged", "slurmdbd", "slurmctld", "slurmd", "slurmstepd"}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=180)


def _live_slurm_processes() -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            name = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if name in OURS and procs.is_running(int(proc.name), name):
            found.append(f"{proc.name}:{name}")
    return found


@pytest.fixture
def cluster_left_up():
    """Whatever this test does, the shared cluster is up when it ends: the tests after it need it."""
    yield
    if _cli("cluster", "up").returncode != 0:
        _cli("cluster", "up")


def test_up_twice_then_down_leaves_nothing_running_then_up_again(slurm_cluster, cluster_left_up):
    first = _cli("cluster", "up")
    assert first.returncode == 0, first.stderr + first.stdout
    second = _cli("cluster", "up")
    assert second.returncode == 0, second.stderr + second.stdout
    assert "slurmctld already runs" in second.stdout and "started" not in second.stdout

    status = _cli("cluster", "status")
    assert status.returncode == 0 and "idle" in status.stdout, status.stdout

    down = _cli("cluster", "down")
    assert down.returncode == 0, down.stderr
    assert {f"stopped {d}" for d in ("munged", "slurmdbd", "slurmctld", "slurmd-n1", "slurmd-n2")} <= set(
        down.stdout.splitlines()
    )
    assert _live_slurm_processes() == []
    stopped = _cli("cluster", "status")
    assert stopped.returncode == 1 and "running" not in stopped.stdout

    again = _cli("cluster", "up")
    assert again.returncode == 0, again.stderr + again.stdout
    assert all(slurm_cluster.status().values())
