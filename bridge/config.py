"""Configuration: bridge.toml and the queues.toml it names, loaded once into frozen dataclasses.

Admins edit these files, so every error names the file, the dotted key, the bad
value and what would have been accepted; unknown keys are errors (a typo must not
silently fall back to a default). Relative paths are relative to the file that
holds them, never to the current directory. queues.toml is read by
bridge.queues_config, each table by bridge.toml_table.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import ConfigError
from bridge.preflight import url_problem
from bridge.queues_config import QueueConfig, load_queues
from bridge.sbatch_text import UnsafeValueError, slurm_filename
from bridge.tags import DEFAULT_DEPLOYMENT, DEPLOYMENT_RULE, valid_deployment
from bridge.toml_table import Table, read_toml
from bridge.values import INT32_MAX

log = logging.getLogger(__name__)

ENV_VAR = "BEAT_BRIDGE_CONFIG"
DEFAULT_PATH = Path("config/bridge.toml")
RUNNERS = ("local", "ssh", "pyslurm")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SshConfig:
    """How the SSH runner reaches the cluster's login node."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    allow_unknown_hosts: bool = False
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class PollConfig:
    """Bounds of the poller's adaptive interval, in seconds."""

    min_interval: float = 1.0
    max_interval: float = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient Slurm errors."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0


@dataclass(frozen=True)
class ClaimRule:
    """When a claim whose sbatch outcome is unknown may be released, or is stuck ([claims])."""

    misses: int = 3  # consecutive look-ups in which squeue and sacct both answered "not there"
    grace: float = 20.0  # seconds from the first of those misses before the claim goes back to the queue
    stuck_after: float = 300.0  # seconds an outcome may stay unknown before it is reported stuck


@dataclass(frozen=True)
class LostRule:
    """When `beat-bridge reconcile` calls a submitted split lost ([reconcile]).

    Its array must be missing from squeue *and* sacct on `misses` reconcile runs
    in a row, spanning at least `grace` seconds: a job slurmctld has forgotten
    reaches sacct only once slurmdbd has taken the controller's backlog.
    """

    misses: int = 3
    grace: float = 300.0


@dataclass(frozen=True)
class SlurmTimeouts:
    """Seconds each kind of Slurm call may take before it counts as timed out ([slurm.timeouts])."""

    submit: float = 30.0  # sbatch: a timed-out one may still have been accepted (looked up by tag)
    find: float = 30.0  # squeue/sacct --name: is a tag on the cluster?
    status: float = 60.0  # the poll's squeue, and sacct for what squeue forgot
    cancel: float = 30.0  # scancel
    accounting: float = 60.0  # sacct for audits and reports
    info: float = 30.0  # partitions, nodes, version, MaxArraySize


@dataclass(frozen=True)
class Limits:
    """What one experiment declaration may ask for ([limits]): bounds that keep one user from stopping the bridge.

    Every split is a database row, a spool file and an array element; every data
    unit an index entry. Ranges are computed arithmetically, but the rows and files
    are real, so a declaration asking for millions of them is refused at `add`.
    """

    max_blocks: int = 500  # blocks per experiment
    max_required_slots: int = 10_000  # splits per job (a block's required_slots; arrays are chunked by MaxArraySize)
    max_splits_per_slot: int = 100  # required_slots <= this x the queue's max_slots_per_user
    max_dataset_size: int = 1_000_000_000  # data units of a dataset input (split indexes are 32-bit)
    max_parameters_bytes: int = 65536  # a block's parameters, as JSON
    max_parameters_depth: int = 32  # nesting of a block's parameters


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the bridge reads from its configuration files."""

    path: Path
    database_url: str
    cache_root: Path
    spool_dir: Path
    runner: str
    queues_file: Path
    queues: Mapping[str, QueueConfig]
    ssh: SshConfig | None = None
    poll: PollConfig = field(default_factory=PollConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    split_errors: int = 3
    cache_errors: int = 5
    templates_dir: Path | None = None
    slurm_conf: Path | None = None
    slurm_env: Mapping[str, str] = field(default_factory=dict)
    timeouts: SlurmTimeouts = field(default_factory=SlurmTimeouts)
    claims: ClaimRule = field(default_factory=ClaimRule)
    spool_retention_hours: float = 168.0  # a settled array's spool directory is removed this long after
    limits: Limits = field(default_factory=Limits)
    deployment: str = DEFAULT_DEPLOYMENT  # in every submission tag: which arrays are this bridge's (bridge.tags)
    reconcile: LostRule = field(default_factory=LostRule)  # [reconcile]

    def runner_env(self) -> dict[str, str]:
        """Environment for Slurm commands: SLURM_CONF (if set) plus [slurm].env."""
        env = dict(self.slurm_env)
        if self.slurm_conf is not None:
            env.setdefault("SLURM_CONF", str(self.slurm_conf))
        return env


def resolve_config_path(arg: str | Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: the explicit argument, else $BEAT_BRIDGE_CONFIG, else config/bridge.toml."""
    environ = os.environ if environ is None else environ
    if arg:
        return Path(arg)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    return DEFAULT_PATH


def load_config(path: str | Path, queue_errors: dict[str, ConfigError] | None = None) -> BridgeConfig:
    """Load bridge.toml and the queues.toml it names; raise ConfigError naming file, key and value.

    With `queue_errors` (`queues check`), a queue that fails to load is kept out and its error put there.
    """
    path = Path(path).absolute()
    top = Table(path, "", read_toml(path))
    base = path.parent
    database_url = _database_url(top.table("database"), base)
    templates_dir = top.path("templates_dir", None)
    if templates_dir is not None and not templates_dir.is_dir():
        raise top.fail("templates_dir", str(templates_dir), "an existing directory")
    runner = top.choice("runner", RUNNERS, "local")
    ssh = _ssh(top.table("ssh", required=runner == "ssh"))
    slurm_conf, slurm_env, timeouts = _slurm(top.table("slurm"))
    queues_file = top.path("queues", base / "queues.toml")
    config = BridgeConfig(
        path=path,
        database_url=database_url,
        cache_root=top.path("cache_root"),
        spool_dir=_spool_dir(top),
        runner=runner,
        queues_file=queues_file,
        queues=load_queues(queues_file, (templates_dir,) if templates_dir else (), queue_errors),
        ssh=ssh,
        poll=_poll(top.table("poll")),
        retry=_retry(top.table("retry")),
        split_errors=top.integer("split_errors", 3, maximum=1000),
        cache_errors=top.integer("cache_errors", 5, maximum=1000),
        templates_dir=templates_dir,
        slurm_conf=slurm_conf,
        slurm_env=slurm_env,
        timeouts=timeouts,
        claims=_claims(top.table("claims")),
        spool_retention_hours=top.number("spool_retention_hours", 168.0),
        limits=_limits(top.table("limits")),
        deployment=_deployment(top),
        reconcile=_lost(top.table("reconcile")),
    )
    top.done()
    log.debug("loaded configuration %s (%d queues)", path, len(config.queues))
    return config


def _database_url(t: Table | None, base: Path) -> str:
    """The database URL; a relative SQLite file path is made relative to the config file."""
    if t is None:
        return f"sqlite:///{base / 'bridge.sqlite'}"
    url = t.text("url", f"sqlite:///{base / 'bridge.sqlite'}")
    prefix = "sqlite:///"
    rest = url[len(prefix):] if url.startswith(prefix) else None
    if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
        url = prefix + str((base / rest).resolve())
    problem = url_problem(url)
    if problem:
        raise t.fail("url", url, problem)
    t.done()
    return url


def _ssh(t: Table | None) -> SshConfig | None:
    if t is None:
        return None
    ssh = SshConfig(
        host=t.text("host"),
        port=t.integer("port", 22),
        user=t.text("user", None),
        key_file=t.path("key_file", None),
        known_hosts=t.path("known_hosts", None),
        allow_unknown_hosts=t.flag("allow_unknown_hosts", False),
        connect_timeout=t.number("connect_timeout", 10.0, minimum=0.1),
    )
    if ssh.port > 65535:
        raise t.fail("port", ssh.port, "an integer from 1 to 65535")
    t.done()
    return ssh


def _slurm(t: Table | None) -> tuple[Path | None, dict[str, str], SlurmTimeouts]:
    if t is None:
        return None, {}, SlurmTimeouts()
    conf = t.path("conf", None)
    timeouts = _timeouts(t.table("timeouts"))
    env_table = t.table("env")
    env: dict[str, str] = {}
    if env_table is not None:
        for name in env_table.data:
            if not _ENV_NAME.match(name):
                raise env_table.fail(name, name, "an environment variable name")
            env[name] = env_table.text(name)
        env_table.done()
    t.done()
    return conf, env, timeouts


def _timeouts(t: Table | None) -> SlurmTimeouts:
    if t is None:
        return SlurmTimeouts()
    default = SlurmTimeouts()
    timeouts = SlurmTimeouts(**{name: t.number(name, getattr(default, name), 0.1)
                                for name in SlurmTimeouts.__dataclass_fields__})
    t.done()
    return timeouts


def _spool_dir(top: Table) -> Path:
    """spool_dir: it is written into every array's --output/--error pattern (bridge.sbatch_text.slurm_filename)."""
    spool = top.path("spool_dir")
    try:
        slurm_filename(str(spool))  # the one rule of what a pattern's directory may hold
    except UnsafeValueError:
        raise top.fail("spool_dir", str(spool), "a path without a backslash (in --output/--error, "
                       "Slurm reads a backslash as 'expand no %A_%a': every element would share one log)") from None
    return spool


def _claims(t: Table | None) -> ClaimRule:
    if t is None:
        return ClaimRule()
    default = ClaimRule()
    rule = ClaimRule(t.integer("misses", default.misses), t.number("grace", default.grace, 0.0),
                     t.number("stuck_after", default.stuck_after, 0.0))
    t.done()
    return rule


def _deployment(top: Table) -> str:
    """deployment: written into every submission tag, so it must keep the tag's shape (bridge.tags)."""
    name = top.raw("deployment", DEFAULT_DEPLOYMENT)
    if not valid_deployment(name):
        raise top.fail("deployment", name, f"{DEPLOYMENT_RULE} (it names this bridge in every job "
                       "array's name, bb-<deployment>-...; two bridges on one cluster need different ones)")
    return name


def _lost(t: Table | None) -> LostRule:
    if t is None:
        return LostRule()
    default = LostRule()
    rule = LostRule(t.integer("misses", default.misses, maximum=1000), t.number("grace", default.grace, 0.0))
    t.done()
    return rule


def _poll(t: Table | None) -> PollConfig:
    if t is None:
        return PollConfig()
    poll = PollConfig(t.number("min_interval", 1.0, 0.1, 3600), t.number("max_interval", 10.0, 0.1, 3600))
    if poll.max_interval < poll.min_interval:
        raise t.fail("max_interval", poll.max_interval, f"a number >= poll.min_interval ({poll.min_interval})")
    t.done()
    return poll


def _retry(t: Table | None) -> RetryPolicy:
    if t is None:
        return RetryPolicy()
    retry = RetryPolicy(t.integer("attempts", 5, maximum=100), t.number("base_delay", 1.0, maximum=3600),
                        t.number("max_delay", 30.0, maximum=3600))
    if retry.max_delay < retry.base_delay:
        raise t.fail("max_delay", retry.max_delay, f"a number >= retry.base_delay ({retry.base_delay})")
    t.done()
    return retry


def _limits(t: Table | None) -> Limits:
    if t is None:
        return Limits()
    default = Limits()
    limits = Limits(**{name: t.integer(name, getattr(default, name), maximum=INT32_MAX)
                       for name in Limits.__dataclass_fields__})
    t.done()
    return limits
