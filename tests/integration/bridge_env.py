"""A bridge set up against the real local cluster in a temporary directory: config files, database, queues.

Shared by the submission and poller tests: `make_env(tmp_path, slurm_cluster, runner)`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from required_parts import need

from bridge.backend import PyslurmUnsupported
from bridge.devcluster.sandbox import Sandbox, open_sandbox, queue_toml
from bridge.runner import Runner
from bridge.sacct import SlurmRecord, parse_sacct
from bridge.slurm import sacct_argv

QUEUES = queue_toml("default") + queue_toml(
    "long", "long", memory_limit=200, time_limit=120, cores_per_slot=2, max_slots_per_user=4)
BridgeEnv = Sandbox  # config, database sessions and the backend of one test
RETRY = "[retry]\nattempts = 3\nbase_delay = 0.2\nmax_delay = 1.0\n"  # transient errors retried fast


def make_env(root: Path, cluster, runner: Runner, *, queues: str = QUEUES, db_url: str | None = None,
             extra: str = "", client: str = "cli") -> BridgeEnv:
    """Write bridge.toml + queues.toml under root, load them, migrate the database, sync the queues.

    `client` "pyslurm" gives the pyslurm client (runner = "pyslurm", `runner` for its few commands);
    a pyslurm that cannot work here is need()ed: skipped, or failed under BRIDGE_REQUIRE_SLURM=1.
    """
    try:
        return open_sandbox(root, cluster.spec.slurm_conf, queues, runner, db_url=db_url,
                            extra=extra + "\n" + RETRY, runner_name="pyslurm" if client == "pyslurm" else "local")
    except PyslurmUnsupported as e:
        need("pyslurm", str(e))


def block(algorithm: str, queue: str = "default", slots: int = 4, size: int = 8, **extra) -> dict:
    """A block declaration reading a generated dataset of `size` numbers."""
    spec = {"algorithm": f"bridge.examples.algorithms:{algorithm}", "queue": queue,
            "environment": "Python-3.11", "required_slots": slots,
            "inputs": {"in": {"dataset": "numbers", "size": size}}, "outputs": ["out"]}
    spec.update(extra)
    return spec


def wait_sacct(runner: Runner, job_ids, done, timeout: float = 120.0) -> list[SlurmRecord]:
    """Poll sacct (1 s) for the arrays until done(records) or timeout; the last records."""
    since = datetime.now() - timedelta(minutes=10)
    deadline = time.monotonic() + timeout
    while True:
        text = runner.run(sacct_argv(since, job_ids=list(job_ids)), timeout=30).stdout
        records = [r for r in parse_sacct(text) if r.is_element and not r.pending_range]
        if done(records) or time.monotonic() > deadline:
            return records
        time.sleep(1.0)
