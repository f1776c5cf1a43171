"""`beat-bridge queues sync` against the live cluster, run as a user would (`queues check`: test_queues_lint.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bridge_env import QUEUES
from sqlalchemy import create_engine, text


def _config(root: Path, queues: str, slurm_cluster) -> Path:
    (root / "queues.toml").write_text(queues)
    (root / "bridge.toml").write_text(
        f'cache_root = "cache"\nspool_dir = "spool"\n[database]\nurl = "sqlite:///{root}/b.sqlite"\n'
        f'[slurm]\nconf = "{slurm_cluster.spec.slurm_conf}"\n')
    return root / "bridge.toml"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=120)


def test_sync_loads_queues_and_the_cluster_nodes(tmp_path, slurm_cluster):
    config = _config(tmp_path, QUEUES, slurm_cluster)
    result = _cli("queues", "sync", "--config", str(config))
    assert result.returncode == 0, result.stderr
    with create_engine(f"sqlite:///{tmp_path}/b.sqlite").connect() as db:
        queues = db.execute(text("select name, partition from queues order by name")).all()
        workers = db.execute(text("select name, cores, memory, active from workers order by name")).all()
    assert [tuple(q) for q in queues] == [("default", "cpu"), ("long", "long")]
    assert [tuple(w) for w in workers] == [("n1", 4, 4000, 1), ("n2", 4, 4000, 1)]
