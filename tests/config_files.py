"""A bridge.toml and its queues.toml written into a test's directory: the smallest valid pair, and a writer."""

from __future__ import annotations

from pathlib import Path

QUEUES = """
[queues.default]
partition = "cpu"
memory_limit = 1000
time_limit = 30
cores_per_slot = 1
max_slots_per_user = 4
"""
MINIMAL = 'cache_root = "cache"\nspool_dir = "spool"\n'  # bridge.toml's required keys


def write(tmp_path: Path, bridge: str, queues: str = QUEUES) -> Path:
    """tmp_path/queues.toml and tmp_path/bridge.toml (which names it by default); the latter's path."""
    (tmp_path / "queues.toml").write_text(queues)
    path = tmp_path / "bridge.toml"
    path.write_text(bridge)
    return path
