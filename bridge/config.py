"""Configuration: bridge.toml and the queues.toml it names, loaded once into frozen dataclasses.

Admins edit these files, so every error names the file, the dotted key, the bad
value and what would have been accepted; unknown keys are errors (a typo must not
silently fall back to a default). Relative paths are relative to the file that
holds them, never to the current directory. queues.toml is read by
bridge.queues_config, each table by bridge.toml_table from the `Field` tables
below, from which bridge.schema also writes bridge.toml's JSON Schema.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import ConfigError
from bridge.metrics_config import METRICS_FIELDS, MetricsConfig, load_metrics
from bridge.preflight import url_problem
from bridge.queues_config import QueueConfig, load_queues
from bridge.sbatch_text import UnsafeValueError, slurm_filename
from bridge.tags import DEFAULT_DEPLOYMENT, DEPLOYMENT, DEPLOYMENT_RULE
from bridge.toml_table import Field, Table, read_fields, read_toml

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
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # [metrics] (bridge.metrics_config)

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


def _seconds(name: str, default: float, description: str, minimum: float = 0.0, maximum: float = 86400.0) -> Field:
    return Field(name, "number", default, f"{description} (seconds)", minimum=minimum, maximum=maximum)


SSH_FIELDS = (
    Field("host", "text", description="the login node the SSH runner runs Slurm commands on"),
    Field("port", "integer", 22, "its SSH port", maximum=65535),
    Field("user", "text", None, "user name on the login node (default: the current user)"),
    Field("key_file", "path", None, "private key file (relative to bridge.toml; default: the SSH agent's keys)"),
    Field("known_hosts", "path", None, "known_hosts file the login node's host key must be in"),
    Field("allow_unknown_hosts", "flag", False, "accept a host key that is not in known_hosts (tests only)"),
    _seconds("connect_timeout", 10.0, "how long connecting may take", minimum=0.1),
)
TIMEOUT_FIELDS = (
    _seconds("submit", SlurmTimeouts.submit, "sbatch; a timed-out one is looked up by its tag", 0.1),
    _seconds("find", SlurmTimeouts.find, "squeue/sacct --name: is a submission tag on the cluster?", 0.1),
    _seconds("status", SlurmTimeouts.status, "the poll's squeue, and sacct for what squeue forgot", 0.1),
    _seconds("cancel", SlurmTimeouts.cancel, "scancel", 0.1),
    _seconds("accounting", SlurmTimeouts.accounting, "sacct for audits and reports", 0.1),
    _seconds("info", SlurmTimeouts.info, "partitions, nodes, version, MaxArraySize", 0.1),
)
SLURM_FIELDS = (
    Field("conf", "path", None, "slurm.conf, exported as SLURM_CONF to every Slurm command"),
    Field("timeouts", "table", None, "seconds each kind of Slurm call may take", fields=TIMEOUT_FIELDS),
    Field("env", "map", None, "environment variables for every Slurm command", key_pattern=_ENV_NAME,
          item=Field("", "text"), expected="an environment variable name"),
)
CLAIM_FIELDS = (
    Field("misses", "integer", ClaimRule.misses, "look-ups in a row where squeue and sacct both answered "
          "'not there' before a claim with an unknown sbatch outcome is released"),
    _seconds("grace", ClaimRule.grace, "those look-ups span at least this long"),
    _seconds("stuck_after", ClaimRule.stuck_after, "an outcome still unknown after this long is reported stuck"),
)
LOST_FIELDS = (
    Field("misses", "integer", LostRule.misses, "reconcile runs in a row that missed a split's array before "
          "it is lost", maximum=1000),
    _seconds("grace", LostRule.grace, "those runs span at least this long"),
)
POLL_FIELDS = (
    _seconds("min_interval", PollConfig.min_interval, "poll interval while states change", 0.1, 3600),
    _seconds("max_interval", PollConfig.max_interval, "poll interval when idle, at least min_interval", 0.1, 3600),
)
RETRY_FIELDS = (
    Field("attempts", "integer", RetryPolicy.attempts, "tries of a Slurm call that failed transiently", maximum=100),
    _seconds("base_delay", RetryPolicy.base_delay, "first delay, doubled per attempt, with jitter", maximum=3600),
    _seconds("max_delay", RetryPolicy.max_delay, "longest delay, at least base_delay", maximum=3600),
)
_LIMIT_WORDS = {
    "max_blocks": "blocks per experiment", "max_required_slots": "splits per job (a block's required_slots)",
    "max_splits_per_slot": "required_slots <= this x the queue's max_slots_per_user",
    "max_dataset_size": "data units of a dataset input", "max_parameters_bytes": "a block's parameters, as JSON",
    "max_parameters_depth": "nesting of a block's parameters",
}
LIMIT_FIELDS = tuple(Field(name, "integer", getattr(Limits, name), words) for name, words in _LIMIT_WORDS.items())
DATABASE_FIELDS = (
    Field("url", "text", None, "SQLAlchemy URL: sqlite:///FILE (relative to bridge.toml; default "
          "bridge.sqlite beside it) or postgresql+psycopg://user@host/db"),
)
_SPOOL_RULE = ("a path without a backslash (in --output/--error, Slurm reads a backslash as 'expand no %A_%a': "
               "every element would share one log)")
BRIDGE_FIELDS = (
    Field("database", "table", None, "the bridge's database", fields=DATABASE_FIELDS),
    Field("templates_dir", "path", None, "an existing directory of admin templates, searched before the shipped "
          "ones (relative to bridge.toml)"),
    Field("runner", "choice", "local", "where Slurm commands run: here, over SSH on a login node, or pyslurm",
          choices=RUNNERS),
    Field("ssh", "table", None, "how the SSH runner reaches the login node", fields=SSH_FIELDS,
          required_when=("runner", "ssh")),
    Field("slurm", "table", None, "how Slurm commands are run", fields=SLURM_FIELDS),
    Field("queues", "path", None, "the queue -> partition mapping (default queues.toml beside bridge.toml)"),
    Field("cache_root", "path", description="BEAT's cache (shared with the nodes; relative to bridge.toml)"),
    Field("spool_dir", "path", description="per-split configuration, results and element logs (shared with "
          "the nodes)", pattern=re.compile(r"^[^\\]*$"), expected=_SPOOL_RULE),
    Field("poll", "table", None, "bounds of the poller's adaptive interval", fields=POLL_FIELDS),
    Field("retry", "table", None, "backoff for transient Slurm errors", fields=RETRY_FIELDS),
    Field("split_errors", "integer", 3, "missing input index: retries before the block fails", maximum=1000),
    Field("cache_errors", "integer", 5, "incomplete cache after COMPLETED: retries before the split fails",
          maximum=1000),
    Field("claims", "table", None, "when a claim whose sbatch outcome is unknown is released", fields=CLAIM_FIELDS),
    Field("spool_retention_hours", "number", 168.0, "a settled array's spool directory is removed this long after "
          "(hours)"),
    Field("limits", "table", None, "what one experiment declaration may ask for", fields=LIMIT_FIELDS),
    Field("deployment", "token", DEFAULT_DEPLOYMENT, "names this bridge in every job array's name, "
          "bb-<deployment>-...; two bridges on one cluster need different ones", pattern=DEPLOYMENT,
          expected=f"{DEPLOYMENT_RULE} (it names this bridge in every job array's name, bb-<deployment>-...; "
          "two bridges on one cluster need different ones)"),
    Field("reconcile", "table", None, "when `beat-bridge reconcile` calls a submitted split lost",
          fields=LOST_FIELDS),
    Field("metrics", "table", None, "where `beat-bridge run` publishes Prometheus metrics (both off by default)",
          fields=METRICS_FIELDS),
)


def load_config(path: str | Path, queue_errors: dict[str, ConfigError] | None = None) -> BridgeConfig:
    """Load bridge.toml and the queues.toml it names; raise ConfigError naming file, key and value.

    With `queue_errors` (`queues check`), a queue that fails to load is kept out and its error put there.
    """
    path = Path(path).absolute()
    top = Table(path, "", read_toml(path))
    v = read_fields(top, BRIDGE_FIELDS)
    base = path.parent
    database_url = _database_url(top, (v["database"] or {}).get("url"), base)
    templates_dir = v["templates_dir"]
    if templates_dir is not None and not templates_dir.is_dir():
        raise top.fail("templates_dir", str(templates_dir), "an existing directory")
    slurm = v["slurm"] or {}
    queues_file = v["queues"] or base / "queues.toml"
    config = BridgeConfig(
        path=path,
        database_url=database_url,
        cache_root=v["cache_root"],
        spool_dir=_spool_dir(top, v["spool_dir"]),
        runner=v["runner"],
        queues_file=queues_file,
        queues=load_queues(queues_file, (templates_dir,) if templates_dir else (), queue_errors),
        ssh=SshConfig(**v["ssh"]) if v["ssh"] else None,
        poll=_poll(top, v["poll"]),
        retry=_retry(top, v["retry"]),
        split_errors=v["split_errors"],
        cache_errors=v["cache_errors"],
        templates_dir=templates_dir,
        slurm_conf=slurm.get("conf"),
        slurm_env=slurm.get("env") or {},
        timeouts=SlurmTimeouts(**(slurm.get("timeouts") or {})),
        claims=ClaimRule(**(v["claims"] or {})),
        spool_retention_hours=v["spool_retention_hours"],
        limits=Limits(**(v["limits"] or {})),
        deployment=v["deployment"],
        reconcile=LostRule(**(v["reconcile"] or {})),
        metrics=load_metrics(top, v["metrics"]),
    )
    log.debug("loaded configuration %s (%d queues)", path, len(config.queues))
    return config


def _database_url(top: Table, url: str | None, base: Path) -> str:
    """The database URL; a relative SQLite file path is made relative to the config file."""
    if url is None:
        return f"sqlite:///{base / 'bridge.sqlite'}"
    prefix = "sqlite:///"
    rest = url[len(prefix):] if url.startswith(prefix) else None
    if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
        url = prefix + str((base / rest).resolve())
    problem = url_problem(url)
    if problem:
        raise Table(top.file, "database", {}).fail("url", url, problem)
    return url


def _spool_dir(top: Table, spool: Path) -> Path:
    """spool_dir: it is written into every array's --output/--error pattern (bridge.sbatch_text.slurm_filename).

    The field's pattern refuses a backslash in the value; this refuses one the resolved path got from
    bridge.toml's own directory.
    """
    try:
        slurm_filename(str(spool))  # the one rule of what a pattern's directory may hold
    except UnsafeValueError:
        raise top.fail("spool_dir", str(spool), _SPOOL_RULE) from None
    return spool


def _poll(top: Table, values: dict | None) -> PollConfig:
    """[poll]; max_interval >= min_interval is a rule between two keys, which a JSON Schema cannot state."""
    poll = PollConfig(**(values or {}))
    if poll.max_interval < poll.min_interval:
        raise Table(top.file, "poll", {}).fail(
            "max_interval", poll.max_interval, f"a number >= poll.min_interval ({poll.min_interval})")
    return poll


def _retry(top: Table, values: dict | None) -> RetryPolicy:
    """[retry]; max_delay >= base_delay is a rule between two keys, which a JSON Schema cannot state."""
    retry = RetryPolicy(**(values or {}))
    if retry.max_delay < retry.base_delay:
        raise Table(top.file, "retry", {}).fail(
            "max_delay", retry.max_delay, f"a number >= retry.base_delay ({retry.base_delay})")
    return retry
