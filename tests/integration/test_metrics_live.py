"""The metrics of a real `beat-bridge run` on the live cluster, scraped over HTTP while it works.

One small experiment (two splits that sleep a few seconds) goes through a real
daemon process with [metrics] listen and textfile set. While it runs, /metrics
is scraped with urllib and the split gauges are compared with the database
whenever the database stood still across a whole cycle; after SIGTERM the last
textfile is compared with the daemon's own closing log line and with the
accounting snapshots (one per settled split, under its array's tag). Then a
real `beat-bridge reconcile --json` writes its gauges beside the textfile.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from bridge_env import QUEUES, block, make_env
from poller_env import POLL, REPO, schedule, start_run, status
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import String, func, select, type_coerce

from bridge.metrics import STATES
from bridge.models import AccountingSnapshot, JobSplit


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            return samples(page.read().decode())
    except OSError:  # not listening yet
        return None


def by_state(env) -> dict[str, int]:
    with env.sessions() as session:
        rows = session.execute(select(type_coerce(JobSplit.status, String), func.count()).group_by(JobSplit.status))
        return {STATES[letter]: count for letter, count in rows}


def gauges(found: dict) -> dict[str, int]:
    return {state: int(v) for state in STATES.values()
            if (v := value(found, "beat_bridge_splits", state=state, queue="default"))}


def cycles(found: dict | None) -> float:
    return (value(found, "beat_bridge_cycle_duration_seconds_count") or 0) if found else 0


def test_a_running_daemon_serves_metrics_that_match_the_database(tmp_path, slurm_cluster):
    port, textfile = free_port(), tmp_path / "bridge.prom"
    env = make_env(tmp_path, slurm_cluster, slurm_cluster.runner, queues=QUEUES,
                   extra=f'{POLL}[metrics]\nlisten = "127.0.0.1:{port}"\ntextfile = "{textfile}"\n')
    experiment = schedule(env, {"name": "metered", "author": "mia", "blocks": {
        "a": block("sleep_then_copy", slots=2, size=4, parameters={"seconds": 3})}})
    log = tmp_path / "run.log"
    with log.open("w") as out:
        daemon = start_run(tmp_path, out)
        try:
            compared = watch(env, port, experiment)
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
    said = log.read_text()
    assert status(env, experiment) == "D", said
    assert compared, f"the database never stood still over a cycle with splits in it:\n{said}"

    last = samples(textfile.read_text())  # written after the last cycle, as the daemon stopped
    closing = [line for line in said.splitlines() if "bridge stopped after" in line][-1]
    words = closing.split("bridge stopped after ")[1].split()
    assert cycles(last) == int(words[0]), closing  # "N cycles, M squeue and K sacct calls"
    assert value(last, "beat_bridge_cycle_duration_seconds_sum") > 0
    # the poll's squeue calls, as the daemon counts them; no claim was looked up by tag (no squeue --name)
    assert value(last, "beat_bridge_slurm_command_duration_seconds_count", command="squeue") == int(words[2]), closing
    assert value(last, "beat_bridge_slurm_command_duration_seconds_sum", command="squeue") > 0
    with env.sessions() as session:
        arrays = session.scalar(select(func.count(func.distinct(AccountingSnapshot.submission_tag))))
        settled = session.scalar(select(func.count()).select_from(AccountingSnapshot))
    assert (arrays, settled) == (1, 2)
    assert value(last, "beat_bridge_submitted_arrays_total", queue="default") == arrays
    assert value(last, "beat_bridge_submitted_splits_total", queue="default") == settled
    assert value(last, "beat_bridge_slurm_command_duration_seconds_count", command="sbatch") == (
        1 + value(last, "beat_bridge_sbatch_retries_total"))  # one array: one sbatch, and any retry of it
    assert gauges(last) == by_state(env) == {}  # the block is over: its split rows are gone

    reconciled = subprocess.run([sys.executable, "-m", "bridge.cli", "reconcile", "--json", "--config",
                                 str(env.config.path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    counts = json.loads(reconciled.stdout)["counts"]
    written = samples((tmp_path / "bridge_reconcile.prom").read_text())
    assert {kind: value(written, "beat_bridge_reconcile_divergences", kind=kind) for kind in counts} == counts


def watch(env, port: int, experiment: int, timeout: float = 90.0) -> list[dict[str, int]]:
    """Scrape until the experiment is final; the split counts compared while the database stood still.

    A comparison is made only when two database reads agree and a whole cycle
    ended between them (the scraped cycle count grew by two): the gauges were
    set from that stable state, after the first read and before the second.
    """
    compared: list[dict[str, int]] = []
    deadline = time.monotonic() + timeout
    while status(env, experiment) not in ("D", "F"):
        assert time.monotonic() < deadline, f"experiment {experiment} not final after {timeout} s"
        before, seen = by_state(env), scrape(port)
        if seen is None:
            time.sleep(0.2)
            continue
        start = cycles(seen)
        while seen is not None and cycles(seen) < start + 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = scrape(port)
        if seen is not None and cycles(seen) >= start + 2 and by_state(env) == before and before:
            assert gauges(seen) == before, (seen, before)
            compared.append(before)
    return compared
