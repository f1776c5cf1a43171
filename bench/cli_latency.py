"""How long `beat-bridge` commands take as a user runs them (a new process each), against the bare interpreter.

Twice: with no daemon running (the command runs everything itself), and with `beat-bridge run`
running on the same bridge.toml, which serves these commands on its socket (bridge.command_server;
the command process only sends its argv and prints the answer: bridge.entry).

On SQLite, in a fresh bridge directory (config/bridge.toml and queues.toml copied, the
schema made, the queues synced; no Slurm call: nothing is submitted), each round runs, as
subprocesses: `experiments add` of config/example-experiment.json (renamed) `--schedule`, `experiments
list`, `experiments show ID`, `experiments cancel ID` (of the experiment just added) and
`status`. The baselines run in the same rounds: the bare interpreter (`python -c pass`) and
`python -c "import sqlalchemy"`, the floor of any command that opens the database, and the floor
of any command that reads it through the bridge's ORM models (import them, configure the mappers). Medians
of ROUNDS (default 7) of wall time (and of CPU time, user + system: steadier on a busy machine);
each command's ratio is to `import sqlalchemy`; the goal is 0.3 s.
Usage: python bench/cli_latency.py [rounds]
"""

from __future__ import annotations

import json
import os
import resource
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
BASELINES = {"python -c pass": ["-c", "pass"], 'python -c "import sqlalchemy"': ["-c", "import sqlalchemy"],
             # the floor of a command that uses the bridge's ORM models: import them, set up their mappers
             "the models' floor": ["-c", "import bridge.models, sqlalchemy.orm as o; o.configure_mappers()"]}
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


def timed(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of one process, and its stdout; a failure stops the benchmark."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, env=os.environ.copy())
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in ok:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu, done.stdout


def declaration(root: Path, number: int) -> str:
    """The shipped example under a name of its own (a name is unique per author)."""
    example = json.loads((REPO / "config" / "example-experiment.json").read_text())
    path = root / f"experiment-{number}.json"
    path.write_text(json.dumps({**example, "name": f"bench-{number}"}))
    return path.name


def one_round(root: Path, number: int, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """The baselines and the five commands once each; the experiment added is the one shown and cancelled."""
    def run(name: str, argv: list[str], ok: tuple[int, ...] = (0,)) -> str:
        elapsed, used, out = timed(argv, root, ok)
        wall[name].append(elapsed)
        cpu[name].append(used)
        return out

    for name, argv in BASELINES.items():
        run(name, argv)
    cli, config = ["-m", "bridge.entry"], ["--config", "config/bridge.toml"]  # the console script's main
    out = run("experiments add", [*cli, "experiments", "add", declaration(root, number), "--schedule", *config])
    experiment = out.split()[2]  # "added experiment N ..."
    run("experiments list", [*cli, "experiments", "list", *config])
    run("experiments show", [*cli, "experiments", "show", experiment, *config])
    run("experiments cancel", [*cli, "experiments", "cancel", experiment, *config])
    run("status", [*cli, "status", *config], ok=(0, 1))  # 1: no daemon runs


def start_daemon(root: Path) -> subprocess.Popen:
    """`beat-bridge run` on the bench's bridge.toml, once its command socket answers."""
    from bridge.command_socket import socket_path

    daemon = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", "--config", "config/bridge.toml"], cwd=root,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    path = socket_path(root / "config" / "bridge.toml")
    deadline = time.monotonic() + 60
    while not path.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            daemon.kill()
            sys.exit(f"the daemon did not start serving commands: {daemon.stderr.read()[-2000:]}")
        time.sleep(0.05)
    return daemon


def main(rounds: int) -> None:
    for mode in ("no daemon running", "daemon running"):
        measure(rounds, mode)


def measure(rounds: int, mode: str) -> None:
    root = workdir()
    names = (*BASELINES, *COMMANDS)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    daemon = start_daemon(root) if mode == "daemon running" else None
    try:
        for number in range(rounds):
            one_round(root, number, wall, cpu)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(60)
        shutil.rmtree(root, ignore_errors=True)
    medians = {name: statistics.median(values) for name, values in wall.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    bare, floor, models = (medians[name] for name in BASELINES)
    print(f"{mode}: SQLite, a new process per command, median of {rounds} rounds; baselines: python -c pass "
          f"{bare:.3f} s, "
          f'python -c "import sqlalchemy" {floor:.3f} s (the baseline below; CPU {cpu_medians[names[1]]:.3f} s), '
          f"importing the bridge's models and setting up their mappers {models:.3f} s")
    for name in COMMANDS:
        mark = "✓" if medians[name] <= GOAL_S else "✗"
        print(f"{ratio_line(name, medians[name], floor)}; CPU {cpu_medians[name]:.3f} s; "
              f"{medians[name] / bare:.1f}x the bare interpreter, {medians[name] - models:+.3f} s over the models' "
              f"floor; goal {GOAL_S} s {mark}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
