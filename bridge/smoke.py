"""A short job array through the command seam: proof that the cluster runs and accounts work.

This is the README's main job until the experiment demo replaces it: sbatch one
array (script on stdin), then one sacct call per second for all its elements until
every element is terminal in accounting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge.errors import BridgeError
from bridge.runner import Runner

FIELDS = "JobID,State,ExitCode,NodeList,Partition,Elapsed"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
            "BOOT_FAIL", "DEADLINE", "PREEMPTED"}

SCRIPT = """#!/bin/bash
#SBATCH --job-name=beat-bridge-smoke
#SBATCH --output=/dev/null
#SBATCH --time=2
echo "element $SLURM_ARRAY_TASK_ID on $SLURMD_NODENAME"
sleep 1
"""


@dataclass(frozen=True)
class Row:
    """One array element as sacct reports it."""

    job_id: str
    state: str
    exit_code: str
    node: str
    partition: str
    elapsed: str


def parse_rows(text: str) -> list[Row]:
    """Rows of `sacct -X --parsable2 --noheader --format=FIELDS`; other lines are skipped."""
    rows = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) == 6 and "_" in parts[0]:
            rows.append(Row(parts[0], parts[1].split()[0].rstrip("+"), *parts[2:]))
    return rows


def run_smoke_array(runner: Runner, elements: int, progress: Callable[[str], None] = print,
                    timeout: float = 120.0) -> list[Row]:
    """Submit an array of `elements` one-second tasks and wait until sacct has them all terminal."""
    submitted = runner.run(["sbatch", "--parsable", f"--array=0-{elements - 1}"], stdin=SCRIPT, timeout=30).check()
    job_id = submitted.stdout.strip().split(";")[0]
    progress(f"submitted array {job_id} with {elements} elements")
    deadline = time.monotonic() + timeout
    rows: list[Row] = []
    while time.monotonic() < deadline:
        result = runner.run(["sacct", "-X", "--parsable2", "--noheader", f"--format={FIELDS}", "-j", job_id],
                            timeout=30)
        rows = parse_rows(result.stdout)
        done = [r for r in rows if r.state in TERMINAL]
        progress(f"  {len(done)}/{elements} elements finished")
        if len(done) == elements:
            break
        time.sleep(1.0)
    else:
        raise BridgeError(f"array {job_id} did not finish within {timeout:.0f} s; last sacct: {rows}")
    progress(f"{'element':12} {'state':10} {'exit':5} {'node':5} {'partition':10} elapsed")
    for r in rows:
        progress(f"{r.job_id:12} {r.state:10} {r.exit_code:5} {r.node:5} {r.partition:10} {r.elapsed}")
    return rows
