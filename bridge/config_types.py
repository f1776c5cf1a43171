"""What bridge.toml loads into: frozen dataclasses, one per table (bridge.config reads the file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bridge.accounts_config import AccountsConfig
from bridge.metrics_config import MetricsConfig
from bridge.queues_config import QueueConfig
from bridge.tags import DEFAULT_DEPLOYMENT


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

    Every split is a database row, a manifest entry and an array element; every data
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
    accounts: AccountsConfig = field(default_factory=AccountsConfig)  # [accounts] (bridge.accounts_config)
    beat_prefix: Path | None = None  # BEAT algorithms and dataformats for BEAT blocks (bridge.declaration_beat)

    def runner_env(self) -> dict[str, str]:
        """Environment for Slurm commands: SLURM_CONF (if set) plus [slurm].env."""
        env = dict(self.slurm_env)
        if self.slurm_conf is not None:
            env.setdefault("SLURM_CONF", str(self.slurm_conf))
        return env
