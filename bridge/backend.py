"""What the bridge's cycle works with: the Slurm client over the runner bridge.toml names.

`make_runner` builds the runner the configuration asks for: local or SSH (for
pyslurm, the local runner of the few commands pyslurm has no call for).
`make_backend` puts the CLI client (bridge.slurm_client) or, for `runner =
"pyslurm"`, the pyslurm client (bridge.pyslurm_client) over it; `Backend`
carries the client and the configuration to the submitter and the poller.

pyslurm must be built for the cluster's Slurm major version (PyPI has it only for
25.11; 22.5.3 is built from source for 22.05, scripts/setup.sh): a pyslurm that is
missing, fails to load, or was built for another Slurm is refused in one line
(`check_pyslurm`), asked of the worker process, never imported by the daemon.
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

PYSLURM_BUILD = ("apt-get install -y libslurm-dev && SLURM_LIB_DIR=/usr/lib/x86_64-linux-gnu "
                 "SLURM_INCLUDE_DIR=/usr/include pip install <pyslurm source tagged for that Slurm, e.g. "
                 "vendor/pyslurm-22.5.3.tar.gz for 22.05> (scripts/setup.sh does this)")


class PyslurmUnsupported(ConfigError):
    """runner = "pyslurm" cannot work here: pyslurm is missing or built for another Slurm."""


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

        if type(self.client) is not SlurmClient:  # the pyslurm client: same worker, commands through `runner`
            return replace(self, client=replace(self.client, runner=runner))
        return replace(self, client=SlurmClient(runner, self.config.timeouts))


def make_backend(config: BridgeConfig, runner: Runner | None = None) -> Backend:
    """The backend of a configuration: its runner (unless one is given) behind the client it names."""
    runner = runner or make_runner(config)
    if config.runner == "pyslurm":
        from bridge.pyslurm_client import PyslurmClient
        from bridge.pyslurm_process import PyslurmProcess

        worker = PyslurmProcess(env=config.runner_env())
        check_pyslurm(config, worker)
        return Backend(PyslurmClient(runner, config.timeouts, worker=worker), config)
    from bridge.slurm_client import SlurmClient

    return Backend(SlurmClient(runner, config.timeouts), config)


def check_runner(config: BridgeConfig) -> None:
    """Refuse a runner bridge.toml names but this bridge cannot build, without building one.

    Commands check this before they touch the database (a pyslurm configuration must not
    leave a database behind), and make the runner only when they speak to Slurm: an SSH
    runner imports paramiko, which a command like `experiments list` never needs.
    """
    if config.runner == "ssh":
        _ssh_config(config)
    elif config.runner == "pyslurm":
        from bridge.pyslurm_process import PyslurmProcess

        worker = PyslurmProcess(env=config.runner_env())
        try:
            check_pyslurm(config, worker)
        finally:
            worker.close()
    elif config.runner != "local":
        make_runner(config)  # a name the loader let through: raises, naming why


def make_runner(config: BridgeConfig) -> Runner:
    """The runner named by bridge.toml's `runner` key."""
    if config.runner in ("local", "pyslurm"):  # pyslurm: for what it has no call for (bridge.pyslurm_client)
        return LocalRunner(env=config.runner_env())
    if config.runner == "ssh":
        return _ssh_runner(config)
    choices = ", ".join(repr(r) for r in RUNNERS)
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


def check_pyslurm(config: BridgeConfig, worker) -> None:
    """PyslurmUnsupported, in one line, unless the worker loads a pyslurm built for the cluster's Slurm.

    Built for = the libslurm headers it was compiled against (slurm_api_version);
    the cluster = what slurmctld reports. Their major versions (22.05) must match.
    """
    from bridge.errors import CommandError

    try:
        facts = worker.call("hello", timeout=config.timeouts.info)
    except CommandError as e:
        raise PyslurmUnsupported(pyslurm_message(config, f"pyslurm cannot be used here ({_last_line(e)})")) from e
    built, cluster = _major(facts["libslurm"]), _major(facts["slurm"])
    if built != cluster:
        raise PyslurmUnsupported(pyslurm_message(
            config, f"pyslurm {facts['pyslurm']} is built for Slurm {facts['libslurm']}", facts["slurm"]))


def pyslurm_message(config: BridgeConfig, problem: str, cluster: str | None = None) -> str:
    """The one line refusing runner = "pyslurm": what it needs, what the cluster runs, how to build it."""
    runs = f"Slurm {cluster}" if cluster else cluster_slurm_version(config)
    return (f"{config.path}: runner = \"pyslurm\" needs pyslurm built for the cluster's Slurm major version "
            f"(this cluster runs {runs}): {problem}. Build it: {PYSLURM_BUILD}; or use runner = \"local\" or \"ssh\"")


def _major(version: str) -> tuple[int, ...]:
    """"22.05.8" or "22.5.8" -> (22, 5): Slurm's major release, as pyslurm numbers it too."""
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def _last_line(error: Exception) -> str:
    return ((getattr(error, "stderr", "") or "").strip().splitlines() or [str(error)])[-1]


def cluster_slurm_version(config: BridgeConfig) -> str:
    """'Slurm 22.05.8' from `sbatch --version`, or why it is unknown."""
    from bridge.slurm_client import SlurmClient

    try:
        return f"Slurm {SlurmClient(LocalRunner(env=config.runner_env()), config.timeouts).version()}"
    except BridgeError as e:
        return f"an unknown Slurm version (sbatch --version: {_last_line(e)})"
