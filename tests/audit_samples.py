"""Audit elements for tests: one element with every figure, and a seeded mixed period of any size."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from bridge.audit import Element, wait_seconds

SINCE = datetime(2024, 3, 1)
UNTIL = datetime(2024, 3, 8)
STATES = [("COMPLETED", "0:0")] * 6 + [("FAILED", "3:0"), ("TIMEOUT", "0:0"), ("OUT_OF_MEMORY", "0:125"),
                                       ("CANCELLED by 0", "0:15"), ("NODE_FAIL", "0:0"), ("FAILED", "0:9")]


def element(**changes) -> Element:
    """A completed element of experiment 1 with every Slurm figure; `changes` override fields (wait_s follows)."""
    start = SINCE + timedelta(hours=1)
    base = Element(
        element_id="100_0", experiment_id=1, experiment_name="exp", block_name="b", author="alice", queue="cpu",
        partition="cpu", algorithm="pkg.mod:fn", node="n1", split_status="C", verdict="done", state="COMPLETED",
        exit_code="0:0", alloc_cpus=2, req_mem_mb=100, max_rss_kb=51200, total_cpu_s=60.0, elapsed_s=60,
        timelimit_min=10, submit=start - timedelta(seconds=5), start=start, end=start + timedelta(seconds=60),
        wait_s=5.0)
    made = base._replace(**changes)
    return made._replace(wait_s=wait_seconds(made.submit, made.start))


def mixed(count: int, seed: int = 7, *, names: tuple[str, ...] = ("diamond", "chain")) -> list[Element]:
    """`count` elements over the period: two authors and queues, nodes n1 n2, every final state, 2 % lacking figures."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        state, exit_code = rng.choice(STATES)
        queue = rng.choice(["cpu", "long"])
        start = SINCE + timedelta(seconds=rng.randrange(0, 6 * 86400))
        elapsed = rng.randrange(1, 3600)
        lacking = rng.random() < 0.02  # sacct never settled it
        experiment = rng.randrange(1, 4)
        out.append(element(
            element_id=f"{1000 + i // 50}_{i % 50}", experiment_id=experiment,
            experiment_name=names[experiment % len(names)], block_name=rng.choice(["a", "b", "c"]),
            author=rng.choice(["alice", "bob"]), queue=queue, partition=queue, node=rng.choice(["n1", "n2"]),
            split_status="C" if state == "COMPLETED" else "F", verdict="done" if state == "COMPLETED" else "failed",
            state=None if lacking else state, exit_code=None if lacking else exit_code,
            alloc_cpus=None if lacking else rng.choice([1, 2, 4]), req_mem_mb=rng.choice([100, 200, 1000]),
            max_rss_kb=None if lacking else rng.randrange(1000, 300_000), total_cpu_s=rng.uniform(0, elapsed * 2),
            elapsed_s=None if lacking else elapsed, timelimit_min=rng.choice([10, 60, 120]),
            submit=start - timedelta(seconds=rng.randrange(0, 600)), start=start,
            end=start + timedelta(seconds=elapsed)))
    return out
