"""Which bridge.toml a command uses: `--config`, else $BEAT_BRIDGE_CONFIG, else config/bridge.toml.

Standard library only: the `beat-bridge` command resolves it before anything else is
imported, to find a running daemon's socket (bridge.command_socket); bridge.config
resolves it the same way when it loads the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ENV_VAR = "BEAT_BRIDGE_CONFIG"
DEFAULT_PATH = Path("config/bridge.toml")


def resolve_config_path(arg: str | Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: the explicit argument, else $BEAT_BRIDGE_CONFIG, else config/bridge.toml."""
    environ = os.environ if environ is None else environ
    if arg:
        return Path(arg)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    return DEFAULT_PATH
