"""A DAG of three levels (4 -> 4 -> 1 tasks of 2 s, critical path 6 s) through the whole bridge.

With `beat-bridge run` already running and idle (its interval backed off), timed
(a) from the user's `beat-bridge experiments add --schedule` and (b) from the
web server's commit (schedule_experiment in this process) to the experiment
reading D; baseline in the same run: plain sbatch with --dependency=afterok,
all three levels submitted up front (bench/dag_baseline.py). Prints each
wall time over the nominal critical path, ours against the baseline's, and a
per-phase profile (bench/dag_profile.py).
Usage: python bench/dag_latency.py [seconds_per_task] [rounds]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dag_baseline
from common import bridge_env, queue_toml, ratio_line
from dag_profile import profile
from sqlalchemy import select

from bridge.db import write_sessions
from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment
from bridge.models import Experiment, Job, JobSplit

QUEUES = queue_toml("default", max_slots_per_user=16)
SHAPE = [4, 4, 1]
LEVELS = ["one", "two", "three"]
# the checkout whose daemon and CLI run (another one, e.g. main, to measure "before")
REPO = Path(os.environ.get("DAG_BRIDGE_REPO") or Path(__file__).resolve().parents[1])
CHILD_ENV = {**os.environ, "PYTHONPATH": str(REPO)}
IDLE = 5.0  # seconds the daemon idles first: its interval backs off (1, 2, 4 s...)


def declaration(name: str, seconds: float) -> dict:
    def level(slots: int, source: dict) -> dict:
        return {"algorithm": "bridge.examples.algorithms:sleep_then_copy", "queue": "default",
                "environment": "Python-3.11", "required_slots": slots,
                "parameters": {"seconds": seconds, "run": name}, "inputs": {"in": source}, "outputs": ["out"]}

    return {"name": name, "author": "bench", "blocks": {
        "one": level(SHAPE[0], {"dataset": "numbers", "size": 4}),
        "two": level(SHAPE[1], {"block": "one", "output": "out"}),
        "three": level(SHAPE[2], {"block": "two", "output": "out"})}}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bridge.cli", *args]


def console_script(*args: str) -> list[str]:
    """`beat-bridge ...` as the user types it (bridge.entry: served by the running daemon)."""
    return [sys.executable, "-m", "bridge.entry", *args]


def wait_done(env, name: str, timeout: float = 90.0) -> tuple[int, dict[int, set[int]]]:
    """Poll the database (0.05 s) until experiment `name` is D; its id and the split ids seen per block."""
    splits: dict[int, set[int]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with env.sessions() as session:
            for split_id, block_id in session.execute(select(JobSplit.id, Job.block_id).join(Job)):
                splits.setdefault(block_id, set()).add(split_id)
            experiment = session.scalars(select(Experiment).where(Experiment.name == name)).first()
            if experiment is not None and experiment.status.value in ("D", "F"):
                assert experiment.status.value == "D", experiment.status
                return experiment.id, splits
        time.sleep(0.05)
    raise TimeoutError(f"experiment {name} not done in {timeout:.0f} s")


def from_command(env, seconds: float, name: str) -> tuple[float, list]:
    """(a): `experiments add --schedule` as the user runs it; its wall to D and the profile."""
    path = env.root / f"{name}.json"
    path.write_text(json.dumps(declaration(name, seconds)))
    started = time.time()
    config = str(env.root / "bridge.toml")
    subprocess.run(console_script("experiments", "add", "--schedule", "--config", config, str(path)), cwd=REPO,
                   env=CHILD_ENV, check=True, capture_output=True)
    return _finish(env, name, started, command=True)


def from_commit(env, seconds: float, name: str) -> tuple[float, list]:
    """(b): schedule_experiment in this process, as the web server calls it; from its commit to D."""
    with write_sessions(env.sessions)() as session:  # beside the running daemon (bridge.db)
        experiment = load_experiment(session, declaration(name, seconds))
        schedule_experiment(session, experiment)
    return _finish(env, name, None, command=False)


def _finish(env, name: str, started: float | None, command: bool) -> tuple[float, list]:
    experiment_id, splits = wait_done(env, name)
    with env.sessions() as session:
        found = profile(session, experiment_id, env.config.spool_dir, LEVELS, splits)
    origin = started if command else found.scheduled
    return found.done - origin, found.phases(started)


def main(seconds: float, rounds: int) -> None:
    env = bridge_env(QUEUES)
    nominal = len(SHAPE) * seconds
    with open(env.root / "run.log", "ab") as log:
        verbose = ["-v"] if os.environ.get("DAG_VERBOSE") else []  # the daemon's DEBUG lines in run.log
        daemon = subprocess.Popen(cli(*verbose, "run", "--config", str(env.root / "bridge.toml")), cwd=REPO,
                                  stdout=log, stderr=subprocess.STDOUT, env=CHILD_ENV)
        try:
            walls: dict[str, list[float]] = {"command": [], "commit": [], "baseline": []}
            profiles: dict[str, list] = {"command": [], "commit": [], "baseline": []}
            for n in range(rounds):
                for kind, measure in (("command", from_command), ("commit", from_commit)):
                    time.sleep(IDLE)
                    wall, phases = measure(env, seconds, f"dag-{kind}-{n}")
                    walls[kind].append(wall)
                    print(f"round {n + 1} from the {kind}: {wall - len(SHAPE) * seconds:.3f} s over", file=sys.stderr)
                    profiles[kind].append(phases)
                baseline = baseline_round(env, seconds)
                walls["baseline"].append(baseline.pop("wall"))
                print(f"round {n + 1} baseline: {walls['baseline'][-1] - len(SHAPE) * seconds:.3f} s over",
                      file=sys.stderr)
                profiles["baseline"].append(list(baseline.items()))
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    report(walls, profiles, nominal, seconds, rounds)
    print(f"daemon log: {env.root / 'run.log'}")


def baseline_round(env, seconds: float) -> dict[str, float]:
    """One baseline run; run again once if the shared cluster lost it (a node failure injected by a test)."""
    try:
        return dag_baseline.run(env.backend.client, SHAPE, seconds, timeout=30)
    except TimeoutError as e:
        print(f"baseline round lost, run again: {e}", file=sys.stderr)
        return dag_baseline.run(env.backend.client, SHAPE, seconds, timeout=30)


def report(walls: dict[str, list[float]], profiles: dict[str, list], nominal: float, seconds: float,
           rounds: int) -> None:
    print(f"DAG {' -> '.join(map(str, SHAPE))} tasks of {seconds:g} s (critical path {nominal:g} s), "
          f"idle daemon, medians of {rounds} round(s)")
    base = statistics.median(walls["baseline"]) - nominal
    for kind in ("command", "commit"):
        over = statistics.median(walls[kind]) - nominal
        print(ratio_line(f"over the critical path from the {kind} (baseline: sbatch afterok)", over, base))
    for kind in ("command", "commit", "baseline"):
        print(f"profile from the {kind} (median s):" if kind != "baseline" else
              "baseline: Slurm alone (first sbatch -> L1's first start; last upstream end -> first start):")
        names = [name for name, _ in profiles[kind][0]]
        for i, name in enumerate(names):
            print(f"  {name:24s} {statistics.median(p[i][1] for p in profiles[kind]):7.3f}")
    per_level = [statistics.median(sum(v for n, v in p if n.startswith(f"L{level} ") and "element" not in n)
                                   for p in profiles["commit"]) for level in range(1, len(SHAPE) + 1)]
    print("ours per level, all but the element's own run (median s): "
          + ", ".join(f"L{n} {v:.3f}" for n, v in enumerate(per_level, 1)))


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0, int(sys.argv[2]) if len(sys.argv) > 2 else 1)
