"""Where the local dev cluster keeps its state: read by commands that look for its slurm.conf (bridge.app).

A module of its own so that finding the path imports nothing else of the dev cluster.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_ENV = "BEAT_BRIDGE_CLUSTER_DIR"


def default_state_dir() -> Path:
    """$BEAT_BRIDGE_CLUSTER_DIR, else $XDG_STATE_HOME (or ~/.local/state)/beat-bridge/cluster."""
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "beat-bridge" / "cluster"


def slurm_conf_in(state_dir: Path) -> Path:
    """A state directory's slurm.conf."""
    return state_dir / "etc" / "slurm.conf"
