"""How long `beat-bridge` commands take as a user runs them (a new process each), against the bare interpreter.

On SQLite, in a fresh bridge directory (config/bridge.toml and queues.toml copied, the
schema made, the queues synced; no Slurm call: nothing is submitted), each round runs, as
subprocesses: `experiments add` of config/example-experiment.json (renamed) `--schedule`, `experiments
list`, `experiments show ID`, `experiments cancel ID` (of the experiment just added) and
`status`. The baselines run in the same rounds: the bare interpreter (`python -c pass`) and
`python -c "import sqlalchemy"`, the floor of any command that opens the database. Medians
of ROUNDS (default 7); each command's ratio is to `import sqlalchemy`; the goal is 0.3 s.
Usage: python bench/cli_latency.py [rounds]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ratio_line

from bridge.config import load_config
from bridge.preflight import open_database, upgrade_database
from bridge.queues import sync_queues

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 0.3
BASELINES = {"python -c pass": ["-c", "pass"], 'python -c "import sqlalchemy"': ["-c", "import sqlalchemy"]}
COMMANDS = ("experiments add", "experiments list", "experiments show", "experiments cancel", "status")


def workdir() -> Path:
    """A bridge directory as a fresh checkout has it, migrated and with its queues in the database."""
    root = Path(tempfile.mkdtemp(prefix="beat-bench-cli-"))
    (root / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, root / "config" / name)
    config = load_config(root / "config" / "bridge.toml")
    upgrade_database(config.path, config.database_url)
    with open_database(config.path, config.database_url)() as session:
        sync_queues(session, config.queues)
    return root


def timed(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Wall seconds of one process and its stdout; a failure stops the benchmark with its stderr."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    elapsed = time.perf_counter() - started
    if done.returncode not in ok:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed, done.stdout


def declaration(root: Path, number: int) -> str:
    """The shipped example under a name of its own (a name is unique per author)."""
    example = json.loads((REPO / "config" / "example-experiment.json").read_text())
    path = root / f"experiment-{number}.json"
    path.write_text(json.dumps({**example, "name": f"bench-{number}"}))
    return path.name


def one_round(root: Path, number: int, times: dict[str, list[float]]) -> None:
    """The baselines and the five commands once each; the experiment added is the one shown and cancelled."""
    for name, argv in BASELINES.items():
        times[name].append(timed(argv, root)[0])
    cli = ["-m", "bridge.cli"]
    config = ["--config", "config/bridge.toml"]
    elapsed, out = timed([*cli, "experiments", "add", declaration(root, number), "--schedule", *config], root)
    times["experiments add"].append(elapsed)
    experiment = out.split()[2]  # "added experiment N ..."
    times["experiments list"].append(timed([*cli, "experiments", "list", *config], root)[0])
    times["experiments show"].append(timed([*cli, "experiments", "show", experiment, *config], root)[0])
    times["experiments cancel"].append(timed([*cli, "experiments", "cancel", experiment, *config], root)[0])
    times["status"].append(timed([*cli, "status", *config], root, ok=(0, 1))[0])  # 1: no daemon runs


def main(rounds: int) -> None:
    root = workdir()
    times: dict[str, list[float]] = {name: [] for name in (*BASELINES, *COMMANDS)}
    try:
        for number in range(rounds):
            one_round(root, number, times)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    bare, floor = (medians[name] for name in BASELINES)
    print(f"SQLite, a new process per command, median of {rounds} rounds; baselines: python -c pass {bare:.3f} s, "
          f'python -c "import sqlalchemy" {floor:.3f} s (the baseline below)')
    for name in COMMANDS:
        mark = "✓" if medians[name] <= GOAL_S else "✗"
        print(f"{ratio_line(name, medians[name], floor)}; {medians[name] / bare:.1f}x the bare interpreter; "
              f"goal {GOAL_S} s {mark}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
