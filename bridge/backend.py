"""What the bridge's cycle works with: the Slurm client over the runner bridge.toml names.

`make_runner` builds the runner the configuration asks for: local, SSH, or a
clear refusal for pyslurm. `Backend` carries the client and the configuration
to the submitter and the poller.

pyslurm sits beside the command seam in the design, but no backend ships: pyslurm
on PyPI exists only for Slurm 25.11 (and the old 17.11/18.08), and no Slurm 25.11 can
be installed here to test one (../shared/slurm-notes.md). Untested backend code is
not shipped; `runner = "pyslurm"` gets an error that says so instead.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from bridge.back_pressure import BackPressure
from bridge.config import RUNNERS, BridgeConfig, SshConfig
from bridge.errors import BridgeError, ConfigError
from bridge.runner import LocalRunner, Runner

if TYPE_CHECKING:
    from bridge.slurm_client import SlurmClient  # imported when a backend is made: commands without Slurm skip it

log = logging.getLogger(__name__)

PYSLURM_SLURM_VERSIONS = "25.11 (and the old 17.11/18.08 series)"


class PyslurmUnsupported(ConfigError):
    """runner = "pyslurm" is not supported by this bridge."""


@dataclass(frozen=True)
class Backend:
    """What a cycle needs besides the database: the Slurm client and the loaded configuration.

    `python` is the interpreter the elements run with; `sleep` waits between
    sbatch retries (a test passes a no-op); `pressure` is what the submitter
    knows of Slurm's submit limits (bridge.back_pressure), kept across cycles.
    """

    client: SlurmClient
    config: BridgeConfig
    python: str = sys.executable
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    pressure: BackPressure = field(default_factory=BackPressure, compare=False, repr=False)

    @property
    def runner(self) -> Runner:
        return self.client.runner

    def with_runner(self, runner: Runner) -> Backend:
        """The same backend speaking through another runner (a test's fault injector)."""
        from bridge.slurm_client import SlurmClient

        return replace(self, client=SlurmClient(runner, self.config.timeouts))


def make_backend(config: BridgeConfig, runner: Runner | None = None) -> Backend:
    """The backend of a configuration: its runner (unless one is given) behind a Slurm client."""
    from bridge.slurm_client import SlurmClient

    return Backend(SlurmClient(runner or make_runner(config), config.timeouts), config)


def check_runner(config: BridgeConfig) -> None:
    """Refuse a runner bridge.toml names but this bridge cannot build, without building one.

    Commands check this before they touch the database (a pyslurm configuration must not
    leave a database behind), and make the runner only when they speak to Slurm: an SSH
    runner imports paramiko, which a command like `experiments list` never needs.
    """
    if config.runner == "ssh":
        _ssh_config(config)
    elif config.runner != "local":
        make_runner(config)  # pyslurm, or a name the loader let through: raises, naming why


def make_runner(config: BridgeConfig) -> Runner:
    """The runner named by bridge.toml's `runner` key."""
    if config.runner == "local":
        return LocalRunner(env=config.runner_env())
    if config.runner == "ssh":
        return _ssh_runner(config)
    if config.runner == "pyslurm":
        raise PyslurmUnsupported(pyslurm_message(config))
    choices = ", ".join(repr(r) for r in RUNNERS if r != "pyslurm")
    raise ConfigError(f"{config.path}: runner = {config.runner!r} is invalid: expected one of {choices}")


def _ssh_runner(config: BridgeConfig) -> Runner:
    ssh = _ssh_config(config)
    from bridge.ssh_runner import SshRunner  # paramiko is imported only when SSH is used

    return SshRunner(
        host=ssh.host, port=ssh.port, user=ssh.user, key_file=ssh.key_file,
        known_hosts=ssh.known_hosts, allow_unknown_hosts=ssh.allow_unknown_hosts,
        connect_timeout=ssh.connect_timeout, env=config.runner_env(),
    )


def _ssh_config(config: BridgeConfig) -> SshConfig:
    """The [ssh] table, with what the SSH runner cannot do without."""
    ssh = config.ssh
    if ssh is None:
        raise ConfigError(f"{config.path}: runner = \"ssh\" needs an [ssh] table (host, key_file, known_hosts)")
    if ssh.key_file is None:
        raise ConfigError(
            f"{config.path}: [ssh] key_file is missing: the SSH runner uses key authentication only"
        )
    return ssh


def pyslurm_message(config: BridgeConfig) -> str:
    """Why runner = "pyslurm" is refused: the versions pyslurm needs, the cluster's and the module's."""
    return (
        f"{config.path}: runner = \"pyslurm\" is not supported. pyslurm on PyPI exists only for "
        f"Slurm {PYSLURM_SLURM_VERSIONS}; this bridge ships no pyslurm backend because no Slurm "
        f"25.11 can be installed here to test it. This cluster runs {cluster_slurm_version(config)}. "
        f"{_pyslurm_module()} Use runner = \"local\" (on the login node) or \"ssh\"."
    )


def cluster_slurm_version(config: BridgeConfig) -> str:
    """'Slurm 22.05.8' from `sbatch --version`, or why it is unknown."""
    from bridge.slurm_client import SlurmClient

    try:
        return f"Slurm {SlurmClient(LocalRunner(env=config.runner_env()), config.timeouts).version()}"
    except BridgeError as e:
        detail = ((getattr(e, "stderr", "") or "").strip().splitlines() or [str(e)])[-1]
        return f"an unknown Slurm version (sbatch --version: {detail})"


def _pyslurm_module() -> str:
    """What `import pyslurm` gives here, in one sentence."""
    try:
        import pyslurm  # type: ignore[import-not-found]
    except ImportError:
        return "The pyslurm module is not installed."
    except Exception as e:  # a pyslurm built for another libslurm may fail in other ways
        return f"The pyslurm module is installed but cannot be imported ({type(e).__name__}: {e})."
    version = getattr(pyslurm, "__version__", None) or "of unknown version"
    return f"The pyslurm module {version} is installed, but it is still unsupported by this bridge."
