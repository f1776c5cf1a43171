"""The fault campaign's parts: its seeded plan, the lives of `beat-bridge run` it disturbs, its figures.

A kill life is kill_windows.kill_at (`run -v`, SIGKILL steered by its log). A
fault life is one `run` process (INFO log) that lives through one real outage
(faults.py) and must still be alive afterwards, then stops on SIGTERM with exit
code 0: the daemon rides out the fault instead of dying of it. The two database
faults strike mid-cycle: when pg_stat_activity shows a backend of the test
database inside a transaction (the test itself holds none meanwhile).
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from faults import restart_postgres, stop_start, terminate_backends
from poller_env import start_run
from sqlalchemy.engine import make_url

FAULTS = ("slurmctld", "slurmdbd", "pg_terminate", "pg_restart")
KILL_TARGETS = ("sbatch", "sbatch-accepted", "squeue", "callback", None, None)  # None: after 0.7-1.5 s
OUTAGE = 8.0  # seconds slurmctld and slurmdbd stay down
SETTLE = 3.0  # seconds a fault life runs on after its fault, before SIGTERM


def plan(rng: random.Random, kills: int = 15) -> list[str]:
    """The campaign's events in order: `kills` kill targets ("kill:<target>") with the four faults among them.

    The faults land among the first kills, while work is sure to be on Slurm.
    """
    events = [f"kill:{rng.choice(KILL_TARGETS) or 'delay'}" for _ in range(kills)]
    for position in sorted(rng.sample(range(1, min(kills, 12)), len(FAULTS)), reverse=True):
        events.insert(position, "")
    faults = list(FAULTS)
    rng.shuffle(faults)
    return [e or faults.pop() for e in events]


def in_transaction(url: str) -> int:
    """How many backends of the database of `url` are inside a transaction right now."""
    import psycopg

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                         dbname="postgres", autocommit=True, connect_timeout=5) as admin:
        (count,) = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                 "xact_start IS NOT NULL AND pid <> pg_backend_pid()", (u.database,)).fetchone()
    return count


def mid_cycle(url: str, process: subprocess.Popen, action: Callable[[], str], timeout: float = 20.0) -> str:
    """Run `action` while `process` is stopped (SIGSTOP) inside a transaction on the database of `url`.

    A cycle's transactions last milliseconds, less than the fault takes to strike:
    the process is held inside one, so the fault surely lands mid-cycle.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if in_transaction(url):
            os.kill(process.pid, signal.SIGSTOP)
            try:
                if in_transaction(url):  # still inside it, now frozen there
                    return action()
            finally:
                os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError(f"no backend of {make_url(url).database} was inside a transaction for {timeout:.0f} s")


@dataclass
class FaultLife:
    """One `run` process through one fault: what happened and how long the fault took."""

    fault: str
    seconds: float = 0.0
    note: str = ""
    survived: bool = False
    code: int | None = None
    failed_cycles: list[str] = field(default_factory=list)  # the life's "cycle N failed (...)" log lines
    # where a database fault can land outside a cycle: the snapshot read between cycles (poller.loop), a warning
    felt_between: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.fault} ({self.seconds:.1f} s{', ' + self.note if self.note else ''}, "
                f"{len(self.failed_cycles)} cycles failed"
                f"{f', {len(self.felt_between)} snapshot reads between cycles' if self.felt_between else ''})")


def strike(fault: str, process: subprocess.Popen, cluster, db_url: str) -> str:
    """Bring about `fault` while `process` runs; a note on how it went."""
    if fault in ("slurmctld", "slurmdbd"):
        stop_start(cluster, fault, OUTAGE)
        return ""
    if fault == "pg_terminate":
        return mid_cycle(db_url, process, lambda: f"{terminate_backends(db_url)} backends terminated")
    if fault == "pg_restart":
        return mid_cycle(db_url, process, lambda: f"restarted, back in {restart_postgres():.1f} s")
    raise ValueError(f"no fault {fault!r}; valid: {', '.join(FAULTS)}")


def cycling(log_path: Path, offset: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Return once the `run` process logging to log_path (from offset) is past start-up and cycling.

    A fixed sleep was not enough on a loaded machine: start-up (imports, the migration check, the
    queue comparison) took over 1.5 s once, and a fault that struck it was taken for a mid-cycle one.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with open(log_path, "rb") as log:
            log.seek(offset)
            if b"bridge running with" in log.read():
                time.sleep(0.5)  # into its first cycles
                return
        time.sleep(0.1)
    raise AssertionError(f"`run` did not start cycling in {timeout:.0f} s (exit code {process.poll()})")


def fault_life(fault: str, config: Path, log_path: Path, cluster, db_url: str) -> FaultLife:
    """A `run` process lives through `fault`; still alive after it, it stops on SIGTERM."""
    life = FaultLife(fault)
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        log.write(f"--- fault life: {fault}\n".encode())
        log.flush()
        process = start_run(config.parent, log)
        try:
            cycling(log_path, offset, process)  # a fault during start-up is not the mid-cycle fault tested here
            started = time.monotonic()
            life.note = strike(fault, process, cluster, db_url)
            life.seconds = time.monotonic() - started
            time.sleep(SETTLE)
            life.survived = process.poll() is None
        finally:
            process.send_signal(signal.SIGTERM)
            life.code = process.wait(timeout=30)
    with open(log_path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
        life.failed_cycles = re.findall(r"cycle \d+ failed \(.*", text)
        life.felt_between = re.findall(r"accounting snapshots not read this time: \(psycopg\.\w*Error\).*", text)
    return life


@dataclass
class Figures:
    """What the campaign did, for its printout."""

    seed: int
    kills: Counter[str] = field(default_factory=Counter)  # target -> kills
    windows: Counter[str] = field(default_factory=Counter)  # where the kills landed, by the log
    unrecorded: int = 0  # kills that left claims without an array id
    faults: list[FaultLife] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def cycles(self, log_text: str) -> tuple[int, int]:
        """Cycles run by every life (DEBUG lines of kill lives, the last line of fault lives), and failed ones."""
        debug = len(re.findall(r"poller\.loop: cycle \d+ in ", log_text))
        summaries = sum(int(n) for n in re.findall(r"bridge stopped after (\d+) cycles", log_text))
        return debug + summaries, len(re.findall(r"cycle \d+ failed \(", log_text))

    def report(self, log_text: str) -> str:
        cycles, failed = self.cycles(log_text)
        return (f"fault campaign, seed {self.seed}: {sum(self.kills.values())} kill -9 {dict(self.kills)}, "
                f"landed in {dict(self.windows)}, {self.unrecorded} left unrecorded claims; faults "
                f"{'; '.join(map(str, self.faults))}; {cycles} cycles ({failed} failed); "
                f"wall {time.monotonic() - self.started:.0f} s")
