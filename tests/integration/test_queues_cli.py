"""`beat-bridge queues check` and `queues sync` against the live cluster, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge_env import QUEUES
from sqlalchemy import create_engine, text

BAD_QUEUES = QUEUES + """
[queues.gpu]
partition = "gpu"
memory_limit = 100
time_limit = 5
cores_per_slot = 1
max_slots_per_user = 1

[queues.quick]
partition = "debug"
memory_limit = 9000
time_limit = 30
cores_per_slot = 16
max_slots_per_user = 1
"""


def _config(root: Path, queues: str, slurm_cluster) -> Path:
    (root / "queues.toml").write_text(queues)
    (root / "bridge.toml").write_text(
        f'cache_root = "cache"\nspool_dir = "spool"\n[database]\nurl = "sqlite:///{root}/b.sqlite"\n'
        f'[slurm]\nconf = "{slurm_cluster.spec.slurm_conf}"\n')
    return root / "bridge.toml"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=120)


def test_check_passes_for_a_mapping_that_fits(tmp_path, slurm_cluster):
    result = _cli("queues", "check", "--config", str(_config(tmp_path, QUEUES, slurm_cluster)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 queues fit the cluster" in result.stdout


def test_check_reports_every_problem_with_file_and_key_and_fails(tmp_path, slurm_cluster):
    result = _cli("queues", "check", "--config", str(_config(tmp_path, BAD_QUEUES, slurm_cluster)))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    queues_file = str(tmp_path / "queues.toml")
    assert all(line.startswith(queues_file + ": queues.") for line in lines), lines
    problems = "\n".join(lines)
    assert "queues.gpu.partition: no partition 'gpu' on the cluster; valid: cpu, debug, long" in problems
    assert "queues.quick.time_limit: 30 min is over the MaxTime of partition 'debug' (5 min)" in problems
    assert "queues.quick.memory_limit: 9000 MB" in problems and "queues.quick.cores_per_slot: 16" in problems


def test_sync_loads_queues_and_the_cluster_nodes(tmp_path, slurm_cluster):
    config = _config(tmp_path, QUEUES, slurm_cluster)
    result = _cli("queues", "sync", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with create_engine(f"sqlite:///{tmp_path}/b.sqlite").connect() as db:
        queues = db.execute(text("select name, partition from queues order by name")).all()
        workers = db.execute(text("select name, cores, memory, active from workers order by name")).all()
    assert [tuple(q) for q in queues] == [("default", "cpu"), ("long", "long")]
    assert [tuple(w) for w in workers] == [("n1", 4, 4000, 1), ("n2", 4, 4000, 1)]
