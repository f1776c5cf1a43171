"""The baseline of bench/dag_latency.py: the same DAG as plain sbatch, every level submitted up front.

Level arrays chained with --dependency=afterok (Slurm starts a level once the
previous one exited 0), each element sleeping the same seconds and writing its
own start and end times (date +%s.%N) to a directory: the wall time is from
the first sbatch to the last element's end, read from those files.
"""

from __future__ import annotations

import shlex
import tempfile
import time
from pathlib import Path

from bridge.slurm_client import SlurmClient


def script(directory: Path, level: int, elements: int, seconds: float, after: int | None) -> str:
    """One level's array script; every value in it quoted."""
    lines = ["#!/bin/bash", f"#SBATCH --array=0-{elements - 1}", "#SBATCH --output=/dev/null",
             "#SBATCH --time=5", f"#SBATCH --job-name=dag-baseline-{level}"]
    if after is not None:
        lines.append(f"#SBATCH --dependency=afterok:{after}")
    stem = shlex.quote(str(directory / f"L{level}-"))
    lines += [f"date +%s.%N > {stem}\"$SLURM_ARRAY_TASK_ID\".start",
              f"sleep {shlex.quote(str(seconds))}",
              f"date +%s.%N > {stem}\"$SLURM_ARRAY_TASK_ID\".tmp",  # then renamed: never read half-written
              f"mv {stem}\"$SLURM_ARRAY_TASK_ID\".tmp {stem}\"$SLURM_ARRAY_TASK_ID\".end"]
    return "\n".join(lines) + "\n"


def run(client: SlurmClient, shape: list[int], seconds: float, timeout: float = 60.0) -> dict[str, float]:
    """Submit the levels chained, wait for the last one's end files; the wall and each level's span."""
    directory = Path(tempfile.mkdtemp(prefix="dag-baseline-"))
    started = time.time()
    previous = None
    for level, elements in enumerate(shape, 1):
        previous = client.submit(script(directory, level, elements, seconds, previous))
    last = len(shape)
    deadline = time.monotonic() + timeout
    while len(list(directory.glob(f"L{last}-*.end"))) < shape[-1]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"baseline DAG not done in {timeout:.0f} s: {sorted(directory.iterdir())}")
        time.sleep(0.05)
    times = {p.name: float(p.read_text()) for p in directory.iterdir() if p.suffix != ".tmp"}
    def at(level: int, what: str, pick) -> float:
        return pick(v for k, v in times.items() if k.startswith(f"L{level}-") and k.endswith(what)) - started

    out = {"wall": at(last, ".end", max), "L1 Slurm start": at(1, ".start", min)}
    for level in range(2, last + 1):  # Slurm's own hand-over: the last upstream end to the first start
        out[f"L{level} hand-over"] = at(level, ".start", min) - at(level - 1, ".end", max)
    return out
