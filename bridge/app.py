"""One loaded configuration and what it opens: database sessions and the backend (Slurm client).

Commands build an App once from `--config` and pass its parts down; nothing
below reads configuration by itself.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bridge import cache
from bridge.backend import check_runner
from bridge.config import BridgeConfig, load_config, resolve_config_path
from bridge.db import write_sessions
from bridge.preflight import ensure_dir, open_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bridge.backend import Backend
    from bridge.runner import Runner
    from bridge.slurm_client import SlurmClient

log = logging.getLogger(__name__)


class App:
    """The bridge as one configuration file describes it.

    The backend is made on first use: `experiments list` never speaks to Slurm, so it
    imports neither the Slurm client's modules nor, with an SSH runner, paramiko.
    """

    def __init__(self, config: BridgeConfig, sessions: sessionmaker[Session], backend: Backend | None = None,
                 runner: Runner | None = None) -> None:
        self.config, self.sessions = config, sessions
        self._backend, self._runner = backend, runner

    @property
    def backend(self) -> Backend:
        """The Slurm client over the runner bridge.toml names (or the one open_app was given)."""
        if self._backend is None:
            from bridge.backend import make_backend

            self._backend = make_backend(self.config, self._runner)
        return self._backend

    @property
    def client(self) -> SlurmClient:
        return self.backend.client

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        """Sessions for commands that write beside a running daemon: the write lock first (bridge.db)."""
        return write_sessions(self.sessions)


def open_app(config_arg: str | Path | None, runner: Runner | None = None, *, may_upgrade: bool = False) -> App:
    """Load the configuration, open the database; the backend follows on first use.

    The database must be at the code's schema revision (a brand-new one is created);
    `may_upgrade` (the daemon) migrates one behind instead of refusing it (bridge.preflight).
    """
    config = with_local_cluster(load_config(resolve_config_path(config_arg)))
    if runner is None:
        check_runner(config)  # before touching the database: a bad runner must fail first
    cache.CACHE_ROOT = str(config.cache_root)  # read at call time by is_cache_complete & co.
    ensure_dir(config.path, "spool_dir", Path(config.spool_dir))
    sessions = open_database(config.path, config.database_url, may_upgrade=may_upgrade)
    return App(config, sessions, runner=runner)


def app_for(args: Any) -> App:
    """A command's App: the running daemon's when it serves the command (bridge.command_server), else opened."""
    served = getattr(args, "served_app", None)
    return served if served is not None else open_app(args.config)


def with_local_cluster(config: BridgeConfig) -> BridgeConfig:
    """Point local commands (runner, or pyslurm's version check) at the dev cluster when nothing names a slurm.conf.

    The one place the README's fallback is decided: a local runner without `[slurm] conf`
    (and no $SLURM_CONF) uses the dev cluster's, if one was brought up here.
    """
    if config.runner not in ("local", "pyslurm") or config.slurm_conf or os.environ.get("SLURM_CONF"):
        return config
    from bridge.devcluster.paths import default_state_dir, slurm_conf_in

    conf = slurm_conf_in(default_state_dir().resolve())  # as load_spec().slurm_conf, without the cluster's modules
    if conf.exists():
        log.debug("no slurm.conf configured: using the local cluster's %s", conf)
        return replace(config, slurm_conf=conf)
    return config
