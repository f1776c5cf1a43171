"""Configuration: bridge.toml and the queues.toml it names, loaded once into frozen dataclasses.

Admins edit these files, so every error names the file, the dotted key, the bad
value and what would have been accepted; unknown keys are errors (a typo must not
silently fall back to a default). Relative paths are relative to the file that
holds them, never to the current directory. queues.toml is read by
bridge.queues_config, each table by bridge.toml_table from the `Field` tables
of bridge.config_fields, from which bridge.schema also writes bridge.toml's JSON
Schema; what it loads into is bridge.config_types.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bridge.accounts_config import load_accounts
from bridge.config_fields import _SPOOL_RULE, BRIDGE_FIELDS, RUNNERS  # the Field tables the loader reads by
from bridge.config_path import resolve_config_path
from bridge.config_types import (  # re-exported: the dataclasses are bridge.config's to its callers
    BridgeConfig,
    ClaimRule,
    Limits,
    LostRule,
    PollConfig,
    RetryPolicy,
    SlurmTimeouts,
    SshConfig,
)
from bridge.errors import ConfigError
from bridge.metrics_config import load_metrics
from bridge.preflight import url_problem
from bridge.queues_config import load_queues
from bridge.sbatch_text import UnsafeValueError, slurm_filename
from bridge.toml_table import Table, read_fields, read_toml

log = logging.getLogger(__name__)
__all__ = ["BRIDGE_FIELDS", "RUNNERS", "BridgeConfig", "ClaimRule", "Limits", "LostRule", "PollConfig", "RetryPolicy",
           "SlurmTimeouts", "SshConfig", "load_config", "resolve_config_path"]

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
    if v["beat_prefix"] is not None and not (v["beat_prefix"] / "algorithms").is_dir():
        raise top.fail("beat_prefix", str(v["beat_prefix"]), "a BEAT prefix: a directory with algorithms/")
    slurm = v["slurm"] or {}
    queues_file = v["queues"] or base / "queues.toml"
    config = BridgeConfig(
        path=path,
        database_url=database_url,
        cache_root=v["cache_root"],
        beat_prefix=v["beat_prefix"],
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
        accounts=load_accounts(v["accounts"]),
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
