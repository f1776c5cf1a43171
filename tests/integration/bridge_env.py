"""A bridge set up against the real local cluster in a temporary directory: config files, database, queues.

Shared by the submission and poller tests: `make_env(tmp_path, slurm_cluster, runner)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from bridge.backend import Backend, make_backend
from bridge.config import BridgeConfig, load_config
from bridge.db import create_session_factory
from bridge.queues import sync_queues
from bridge.runner import Runner
from bridge.sacct import SlurmRecord, parse_sacct
from bridge.slurm import sacct_argv


def queue_toml(name: str, partition: str = "cpu", *, memory_limit: int = 300, time_limit: int = 10,
               cores_per_slot: int = 1, max_slots_per_user: int = 8, extra: str = "") -> str:
    """One `[queues.<name>]` table of queues.toml, accepting the Python-3.11 environment."""
    return (f"\n[queues.{name}]\npartition = \"{partition}\"\nmemory_limit = {memory_limit}\n"
            f"time_limit = {time_limit}\ncores_per_slot = {cores_per_slot}\n"
            f"max_slots_per_user = {max_slots_per_user}\nenvironments = [\"Python-3.11\"]\n{extra}\n")


QUEUES = queue_toml("default") + queue_toml(
    "long", "long", memory_limit=200, time_limit=120, cores_per_slot=2, max_slots_per_user=4)


@dataclass
class BridgeEnv:
    """Config, database sessions and the backend (Slurm client) of one test."""

    root: Path
    config: BridgeConfig
    sessions: sessionmaker[Session]
    backend: Backend


def make_env(root: Path, cluster, runner: Runner, *, queues: str = QUEUES, db_url: str | None = None,
             extra: str = "") -> BridgeEnv:
    """Write bridge.toml + queues.toml under root, load them, migrate the database, sync the queues."""
    (root / "queues.toml").write_text(queues)
    (root / "bridge.toml").write_text(
        f'runner = "local"\nqueues = "queues.toml"\ncache_root = "cache"\nspool_dir = "spool"\n{extra}\n'
        f'[database]\nurl = "{db_url or "sqlite:///" + str(root / "bridge.sqlite")}"\n'
        f'[slurm]\nconf = "{cluster.spec.slurm_conf}"\n'
        "[retry]\nattempts = 3\nbase_delay = 0.2\nmax_delay = 1.0\n"
    )
    config = load_config(root / "bridge.toml")
    sessions = create_session_factory(config.database_url)
    with sessions() as session:
        sync_queues(session, config.queues)
    return BridgeEnv(root, config, sessions, make_backend(config, runner))


def block(algorithm: str, queue: str = "default", slots: int = 4, size: int = 8, **extra) -> dict:
    """A block declaration reading a generated dataset of `size` numbers."""
    spec = {"algorithm": f"bridge.examples.algorithms:{algorithm}", "queue": queue,
            "environment": "Python-3.11", "required_slots": slots,
            "inputs": {"in": {"dataset": "numbers", "size": size}}, "outputs": ["out"]}
    spec.update(extra)
    return spec


def wait_sacct(runner: Runner, job_ids, done, timeout: float = 120.0) -> list[SlurmRecord]:
    """Poll sacct (1 s) for the arrays until done(records) or timeout; the last records."""
    since = datetime.now() - timedelta(minutes=10)
    deadline = time.monotonic() + timeout
    while True:
        text = runner.run(sacct_argv(since, job_ids=list(job_ids)), timeout=30).stdout
        records = [r for r in parse_sacct(text) if r.is_element and not r.pending_range]
        if done(records) or time.monotonic() > deadline:
            return records
        time.sleep(1.0)
