"""What the benchmarks share: a bridge in a temporary directory against the running local cluster."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bridge.devcluster.cluster import LocalCluster, load_spec
from bridge.devcluster.sandbox import Sandbox, open_sandbox, queue_toml


def cluster() -> LocalCluster:
    """The local cluster, brought up if needed."""
    found = LocalCluster(load_spec(), say=lambda line: None)
    found.up()
    return found


def bridge_env(queues: str, min_interval: float | None = None, db_url: str | None = None,
               extra: str = "") -> Sandbox:
    """A fresh bridge (SQLite unless `db_url`, spool, cache) in a temporary directory, with these queues.

    `extra`: top-level bridge.toml keys (`deployment = "..."`: arrays no other bridge's reconcile touches).
    """
    local = cluster()
    root = Path(tempfile.mkdtemp(prefix="beat-bench-"))
    poll = f"[poll]\nmin_interval = {min_interval}\n" if min_interval else ""
    return open_sandbox(root, local.spec.slurm_conf, queues, local.runner, db_url=db_url, extra=extra + "\n" + poll)


def median_seconds(action, rounds: int) -> float:
    """The median wall time of `rounds` calls of action()."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ratio_line(name: str, ours: float, baseline: float, unit: str = "s") -> str:
    """`name: ours X s, baseline Y s, ratio ours/baseline Z`."""
    return f"{name}: ours {ours:.3f} {unit}, baseline {baseline:.3f} {unit}, ratio {ours / baseline:.3f}"


HELD_QUEUE = queue_toml("bench", memory_limit=100, time_limit=5, max_slots_per_user=100000,
                        extra='extra_directives = ["--hold"]')  # held: submission and status costs only


def one_block(name: str, splits: int) -> dict:
    """An experiment of one `square` block of `splits` splits on the held queue."""
    return {"name": name, "author": "bench", "blocks": {"b": {
        "algorithm": "bridge.examples.algorithms:square", "queue": "bench", "environment": "Python-3.11",
        "required_slots": splits, "parameters": {"name": name},
        "inputs": {"in": {"dataset": "numbers", "size": splits}}, "outputs": ["out"]}}}
