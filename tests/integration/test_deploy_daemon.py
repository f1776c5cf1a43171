"""`beat-bridge run` as deploy/ runs it: systemd's notify messages from a real daemon, and two daemons on one
PostgreSQL database where one is killed with SIGKILL mid-run and the other carries on (docs/deployment.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from bridge_env import block, make_env
from kill_windows import in_poll, is_sbatch, is_split_transition, kill_after_child_exits
from poller_env import (
    FAST_CLAIMS,
    POLL,
    REPO,
    blocks,
    results_of,
    schedule,
    split_history,
    start_run,
    status,
    tagged_arrays,
    tags_by_block,
    wait_for,
)


class Listener:
    """An abstract AF_UNIX datagram socket as systemd's NOTIFY_SOCKET; a thread collects what arrives."""

    def __init__(self) -> None:
        self.name = f"@bb-notify-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(65536).decode()
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))

    def count(self, key: str) -> int:
        return sum(key in m for m in list(self.messages))

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)
        self.sock.close()


def _last_status(listener: Listener) -> str:
    statuses = [m["STATUS"] for m in list(listener.messages) if "STATUS" in m]
    return statuses[-1] if statuses else ""


def test_run_sends_ready_watchdog_status_and_stopping_to_systemds_socket(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, extra=POLL)
    experiment_id = schedule(env, {"name": "notified", "author": "nora", "blocks": {
        "a": block("scale", slots=2, size=4, parameters={"factor": 3})}})
    listener = Listener()
    variables = {"NOTIFY_SOCKET": listener.name, "WATCHDOG_USEC": "1000000"}  # fed at most every 0.5 s
    log_path = tmp_path / "run.log"
    try:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bridge.cli", "run", "--config", str(tmp_path / "bridge.toml")],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **variables})
            try:
                wait_for("experiment done", lambda: status(env, experiment_id) in ("D", "F"), timeout=30)
                wait_for("3 watchdog pings", lambda: listener.count("WATCHDOG") >= 3, timeout=10)
                # the cycle that applied the ends still counted 2 active: stop after one that saw them gone
                wait_for("a cycle reporting nothing active", lambda: _last_status(listener).endswith(
                    "0 active splits; last error: none"), timeout=30)
            finally:
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=20)
        wait_for("STOPPING=1", lambda: listener.count("STOPPING"), timeout=5)
    finally:
        listener.close()
    messages, text = listener.messages, log_path.read_text()
    assert code == 0 and status(env, experiment_id) == "D", text[-3000:]
    assert messages[0].get("READY") == "1" and listener.count("READY") == 1, messages[:3]
    assert messages[-1].get("STOPPING") == "1" and listener.count("STOPPING") == 1, messages[-3:]
    statuses = [m["STATUS"] for m in messages if "STATUS" in m]
    assert len(statuses) == len(messages), messages  # every message says what the daemon is doing
    assert any(s.endswith("2 active splits; last error: none") for s in statuses), statuses  # the array, polled
    assert statuses[-2].endswith("0 active splits; last error: none"), statuses  # the last cycle: all settled


def work(lines: list[str], patient: bool) -> str | None:
    """What of the experiment's work the daemon's log just began: "sbatch"; once not `patient`, "callback" too."""
    if is_sbatch(lines[-1]):
        return "sbatch"
    if not patient and is_split_transition(lines[-1]) and in_poll(lines):
        return "callback"
    return None


class Victim:
    """`beat-bridge -v run`, its log read by a thread; once armed, SIGKILLed at its first sbatch (after
    Slurm has the array, before the bridge recorded it), or past `patience` seconds at a callback in a poll."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bridge.cli", "-v", "run", "--config", str(config)],
                                        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log_path, self.lines, self.where = log_path, [], "timeout"
        self.running, self.armed = threading.Event(), None
        self.patience, self.timer = 0.0, None
        self.accepted = False  # killed after its sbatch child exited: Slurm has an array the bridge never recorded
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def arm(self, patience: float, timeout: float) -> None:
        self.patience, self.armed = patience, time.monotonic()
        self.timer = threading.Timer(timeout, self.process.kill)
        self.timer.start()

    def _read(self) -> None:
        with open(self.log_path, "a") as log:
            for line in self.process.stdout:
                self.lines.append(line.rstrip("\n"))
                log.write(line)
                if "bridge running" in line:
                    self.running.set()
                if self.armed is None or self.where != "timeout":
                    continue
                seen = work(self.lines, time.monotonic() - self.armed < self.patience)
                if seen == "sbatch":
                    self.accepted = kill_after_child_exits(self.process.pid, "sbatch")
                elif seen:
                    self.process.kill()
                self.where = seen or self.where

    def wait(self, timeout: float) -> int:
        """Its exit code, once killed (SIGKILL after `timeout` at the latest)."""
        self.thread.join(timeout)
        self.process.kill()
        if self.timer is not None:
            self.timer.cancel()
        return self.process.wait(timeout=10)


SURVIVOR_POLL = "[poll]\nmin_interval = 1.0\nmax_interval = 1.0\n"
VICTIM_POLL = "[poll]\nmin_interval = 0.1\nmax_interval = 0.5\n"


@pytest.mark.postgres
def test_two_daemons_on_one_postgresql_database_one_killed_mid_run_the_other_finishes_exactly_once(
        tmp_path, slurm_cluster, slurm, postgres_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=postgres_url, extra=SURVIVOR_POLL + FAST_CLAIMS)
    # The victim polls faster, so it usually wins the race to submit a: killed once Slurm has a's array
    # and before it recorded the id, the survivor must find that array by its tag and not submit a again.
    victim_config = tmp_path / "victim.toml"
    victim_config.write_text((tmp_path / "bridge.toml").read_text().replace(SURVIVOR_POLL, VICTIM_POLL))
    assert VICTIM_POLL in victim_config.read_text()
    survivor_log = tmp_path / "survivor.log"
    with open(survivor_log, "ab") as log:
        survivor, victim = start_run(tmp_path, log), Victim(victim_config, tmp_path / "victim.log")
        try:
            wait_for("both daemons running", lambda: victim.running.is_set()
                     and "bridge running" in survivor_log.read_text(), timeout=30)
            victim.arm(patience=3.0, timeout=10)
            since = datetime.now() - timedelta(minutes=1)
            experiment_id = schedule(env, {"name": "failover", "author": "olga", "blocks": {
                "a": block("scale", slots=3, size=6, parameters={"factor": 29}),
                "b": block("sleep_then_copy", slots=2, inputs={"in": {"block": "a", "output": "out"}},
                           parameters={"seconds": 2}),
                "c": block("total", slots=1, inputs={"in": {"block": "b", "output": "out"}}),
            }})
            victim_code = victim.wait(timeout=15)
            at_kill = status(env, experiment_id)
            wait_for("experiment finished", lambda: status(env, experiment_id) in ("D", "F"), timeout=60)
        finally:
            victim.process.kill()
            survivor.send_signal(signal.SIGTERM)
            survivor_code = survivor.wait(timeout=20)
    where, lines = victim.where, victim.lines
    seen = (f"victim killed at {where}{' (Slurm had the array)' if victim.accepted else ''} with the experiment "
            f"{at_kill}; its log ends {lines[-5:]}")
    print(seen)
    assert victim_code == -signal.SIGKILL and where != "timeout", seen  # it died doing the experiment's work
    assert at_kill in ("S", "R"), seen  # ... with work left, which only the survivor can have done
    survivor_text = survivor_log.read_text()
    assert survivor_code == 0 and status(env, experiment_id) == "D", (seen, survivor_text[-3000:])
    if victim.accepted:  # the survivor found the victim's array by its tag and recorded it, not submitted again
        assert "before a crash or timeout: recording it" in survivor_text, (seen, survivor_text[-3000:])

    splits_per_block = {"a": 3, "b": 2, "c": 1}
    with env.sessions() as session:
        named = blocks(session, experiment_id)
        for name, count in splits_per_block.items():
            results = results_of(session, named[name])
            assert [r.split_index or 0 for r in results] == list(range(count)), (name, results, seen)
            assert all(r.status == 0 for r in results), (name, seen)
        history = split_history(session)
        assert len(history) == sum(splits_per_block.values()), history
        for split_id, steps in history.items():
            moves = [(f, t) for f, t, _ in steps]
            assert moves in ([(None, "N"), ("N", "P"), ("P", "C")], [(None, "N"), ("N", "C")]), (split_id, seen)
        block_name = {b.id: n for n, b in named.items()}
    tags = tags_by_block(env.config.spool_dir)
    records = tagged_arrays(slurm, since, tags, blocks=len(splits_per_block))
    arrays = Counter(block_name[tags[t]] for t in {r.name for r in records})
    assert arrays == Counter(splits_per_block.keys()), (arrays, seen)  # every block one array, none twice
    elements = Counter((r.name, r.array_task_id) for r in records)
    assert sorted(elements.values()) == [1] * sum(splits_per_block.values()), (elements, seen)  # each split once
