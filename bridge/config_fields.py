"""bridge.toml's keys, declared once: the loader (bridge.config) reads by these Field tables and
bridge.schema writes bridge.toml's JSON Schema from them."""

from __future__ import annotations

import re

from bridge.accounts_config import ACCOUNTS_FIELDS
from bridge.config_types import ClaimRule, Limits, LostRule, PollConfig, RetryPolicy, SlurmTimeouts
from bridge.metrics_config import METRICS_FIELDS
from bridge.tags import DEFAULT_DEPLOYMENT, DEPLOYMENT, DEPLOYMENT_RULE
from bridge.toml_table import Field

RUNNERS = ("local", "ssh", "pyslurm")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    Field("beat_prefix", "path", None, "a BEAT prefix (algorithms/, dataformats/, libraries/): blocks may name its "
          "algorithms 'user/name/version' (relative to bridge.toml; shared with the nodes)"),
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
    Field("accounts", "table", None, "the Slurm account each BEAT author's arrays are charged to (fair share per "
          "person)", fields=ACCOUNTS_FIELDS),
)
