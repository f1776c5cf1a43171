"""A bridge in one directory beside the local cluster: its bridge.toml, queues.toml, database and backend.

The demo, the integration tests and the benchmarks each run a bridge of their
own against the dev cluster; this writes and opens one the same way for all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from bridge.backend import Backend, make_backend
from bridge.config import BridgeConfig, load_config
from bridge.db import create_session_factory
from bridge.queues import sync_queues
from bridge.runner import Runner


def queue_toml(name: str, partition: str = "cpu", *, memory_limit: int = 300, time_limit: int = 10,
               cores_per_slot: int = 1, max_slots_per_user: int = 8, extra: str = "") -> str:
    """One `[queues.<name>]` table of queues.toml, accepting the Python-3.11 environment."""
    return (f"\n[queues.{name}]\npartition = \"{partition}\"\nmemory_limit = {memory_limit}\n"
            f"time_limit = {time_limit}\ncores_per_slot = {cores_per_slot}\n"
            f"max_slots_per_user = {max_slots_per_user}\nenvironments = [\"Python-3.11\"]\n{extra}\n")


def write_config(root: Path, slurm_conf: Path, queues: str, *, db_url: str | None = None,
                 extra: str = "", runner: str = "local") -> Path:
    """root/queues.toml and root/bridge.toml (cache, spool and SQLite database under root); the latter's path.

    `extra` is TOML placed before the [database] table: top-level keys first, then tables.
    `runner` is bridge.toml's runner: "local" (the CLI client) or "pyslurm".
    """
    (root / "queues.toml").write_text(queues)
    path = root / "bridge.toml"
    url = db_url or "sqlite:///" + str(root / "bridge.sqlite")
    path.write_text(  # a JSON string is a TOML basic string: paths with quotes or backslashes stay intact
        f'runner = {json.dumps(runner)}\nqueues = "queues.toml"\ncache_root = "cache"\nspool_dir = "spool"\n{extra}\n'
        f'[database]\nurl = {json.dumps(url)}\n[slurm]\nconf = {json.dumps(str(slurm_conf))}\n')
    return path


@dataclass
class Sandbox:
    """Config, database sessions and the backend (Slurm client) of one bridge directory."""

    root: Path
    config: BridgeConfig
    sessions: sessionmaker[Session]
    backend: Backend


def open_sandbox(root: Path, slurm_conf: Path, queues: str, runner: Runner | None = None, *,
                 db_url: str | None = None, extra: str = "", runner_name: str = "local") -> Sandbox:
    """Write the configuration under root, migrate the database, sync the queues, make the backend.

    `runner_name` is bridge.toml's runner ("pyslurm": the pyslurm client, with `runner` for its commands).
    """
    config = load_config(write_config(root, slurm_conf, queues, db_url=db_url, extra=extra, runner=runner_name))
    sessions = create_session_factory(config.database_url)
    with sessions() as session:
        sync_queues(session, config.queues)
    return Sandbox(root, config, sessions, make_backend(config, runner))
