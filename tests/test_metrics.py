"""bridge.metrics: every metric set from what really happened, read back through prometheus_client's parser.

The cycle tests run the daemon's loop (poller.loop.BridgeLoop) over the replay
fake of Slurm (tests/fakes.py) and a real SQLite database, and compare the
exposition text with the database and the fake's own call log.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from pathlib import Path

import pytest
from fakes import LOST, NOT_SUBMITTED, SQUEUE_DOWN, TIMEOUT, Answer, ReplayRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from replay_env import answer, block, declare, make_replay_env
from sqlalchemy import String, func, select, type_coerce

from bridge.config import load_config
from bridge.devcluster.sandbox import queue_toml, write_config
from bridge.errors import BridgeError, CommandError, CommandTimeout, ConfigError
from bridge.metrics import (
    STATES,
    MeteredRunner,
    Metrics,
    command_name,
    reconcile_registry,
    start_metrics,
    write_reconcile,
)
from bridge.metrics_config import parse_listen
from bridge.models import JobSplit
from bridge.reconcile_facts import KINDS, Divergence, ReconcileReport
from bridge.submit import Submission
from poller.loop import BridgeLoop

DATA = Path(__file__).parent / "data"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition text: (sample name, its labels) -> value."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


# --- [metrics] in bridge.toml --------------------------------------------------------------


@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9100", ("::1", 9100)), ("0.0.0.0:1", ("0.0.0.0", 1)),
    ("metrics.example.org:65535", ("metrics.example.org", 65535)),
    ("127.0.0.1", None), (":9464", None), ("127.0.0.1:0", None), ("127.0.0.1:65536", None), ("::1:9464", None),
    ("http://127.0.0.1:9464", None), ("host :9464", None)])
def test_listen_is_host_colon_port(text, address):
    assert parse_listen(text) == address


def _config(tmp_path, table: str):
    return load_config(write_config(tmp_path, tmp_path / "slurm.conf", queue_toml("default"), extra=table))


def test_metrics_are_off_unless_configured(tmp_path):
    config = _config(tmp_path, "")
    assert not config.metrics.enabled and start_metrics(config) is None


def test_listen_and_textfile_are_read_relative_to_the_file(tmp_path):
    (tmp_path / "prom").mkdir()
    config = _config(tmp_path, '[metrics]\nlisten = "[::1]:9464"\ntextfile = "prom/bridge.prom"\n')
    assert config.metrics.listen == ("::1", 9464)
    assert config.metrics.textfile == tmp_path / "prom" / "bridge.prom"


@pytest.mark.parametrize("table, words", [
    ('listen = "localhost"', ["bridge.toml: metrics.listen = 'localhost' is invalid", "HOST:PORT", "65535"]),
    ('listen = "127.0.0.1:99999"', ["metrics.listen = '127.0.0.1:99999'", '"[::1]:9464"']),
    ('textfile = "bridge.txt"', ["metrics.textfile", "bridge.txt", "ending in .prom in an existing directory"]),
    ('textfile = "missing/bridge.prom"', ["metrics.textfile", "missing/bridge.prom", "existing directory"]),
    ('port = 9464', ["unknown key metrics.port in [metrics]", "valid keys: listen, textfile"]),
])
def test_a_bad_metrics_table_is_refused_naming_file_key_and_what_is_valid(tmp_path, table, words):
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, f"[metrics]\n{table}\n")
    for word in words:
        assert word in str(e.value)


def test_a_port_in_use_is_an_error_naming_the_key(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _config(tmp_path, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        with pytest.raises(BridgeError) as e:
            start_metrics(config)
    assert f"[metrics] listen = 127.0.0.1:{port}: cannot listen there" in str(e.value)


# --- Slurm commands -------------------------------------------------------------------------


def test_every_command_is_timed_by_name_and_its_failures_counted_by_reason():
    fake = (ReplayRunner().then("squeue", Answer("1_0|RUNNING\n"), SQUEUE_DOWN).then("sacct", TIMEOUT)
            .then("scancel", LOST).then("sbatch", Answer("42\n")))
    metrics = Metrics(process=False)
    runner = MeteredRunner(fake, metrics)
    first = runner.run(["squeue", "-j", "1"], timeout=5)
    assert (first.argv, first.returncode, first.stdout) == (("squeue", "-j", "1"), 0, "1_0|RUNNING\n")
    assert runner.run(["squeue", "-j", "1"]).returncode == 1  # an exit code is an answer: returned
    with pytest.raises(CommandTimeout):
        runner.run(["sacct", "-X"])
    with pytest.raises(CommandError) as lost:
        runner.run(["scancel", "1_0"])
    assert not isinstance(lost.value, CommandTimeout)
    assert runner.run(["sbatch", "--parsable"], stdin="#!/bin/sh\n").stdout == "42\n"
    assert fake.stdins[-1] == "#!/bin/sh\n" and fake.timeouts[0] == 5  # passed through unchanged

    text = scrape(metrics)
    count = "beat_bridge_slurm_command_duration_seconds_count"
    assert [value(text, count, command=c) for c in ("squeue", "sacct", "scancel", "sbatch")] == [2, 1, 1, 1]
    errors = "beat_bridge_slurm_command_errors_total"
    assert value(text, errors, command="squeue", reason="exit") == 1
    assert value(text, errors, command="sacct", reason="timeout") == 1
    assert value(text, errors, command="scancel", reason="unreachable") == 1
    assert value(text, errors, command="sbatch", reason="exit") is None
    assert command_name(("/usr/bin/squeue", "-j", "1")) == "squeue"  # the SSH runner's argv as the local one's


# --- the cycle, through the daemon's loop -------------------------------------------------


def _by_state(env) -> dict[tuple[str, str], int]:
    """The database's own count, per (queue, state name), independently of bridge.metrics."""
    with env.sessions() as session:
        rows = session.execute(select(type_coerce(JobSplit.status, String), func.count()).group_by(JobSplit.status))
        return {("default", STATES[letter]): count for letter, count in rows}


def test_two_cycles_of_the_loop_set_cycles_commands_submissions_retries_and_splits(tmp_path):
    env = make_replay_env(tmp_path, extra=f'[metrics]\ntextfile = "{tmp_path / "bridge.prom"}"\n')
    declare(env, {"a": block(slots=2, size=4)})
    env.fake.then("sbatch", NOT_SUBMITTED, Answer("4242\n"))  # one retry, then accepted
    metrics = Metrics(textfile=env.config.metrics.textfile, process=False)
    loop = BridgeLoop(env.sessions, metrics.instrument(env.backend), env.config.poll, metrics=metrics)

    loop.run(once=True)
    text = scrape(metrics)
    assert value(text, "beat_bridge_cycle_duration_seconds_count") == 1
    assert value(text, "beat_bridge_cycle_duration_seconds_sum") == pytest.approx(loop.last_cycle_seconds)
    assert value(text, "beat_bridge_sbatch_retries_total") == 1
    assert value(text, "beat_bridge_slurm_command_duration_seconds_count", command="sbatch") == 2
    assert value(text, "beat_bridge_slurm_command_errors_total", command="sbatch", reason="exit") == 1
    assert value(text, "beat_bridge_submitted_arrays_total", queue="default") == 1
    assert value(text, "beat_bridge_submitted_splits_total", queue="default") == 2
    queued = _by_state(env)
    assert queued == {("default", "queued"): 2}
    assert {s: value(text, "beat_bridge_splits", state=s, queue="default") for s in STATES.values()} == {
        s: queued.get(("default", s), 0) for s in STATES.values()}

    answer(env, "running", "squeue", Submission(_tag(env), 4242, (), "default"))  # both elements run (recorded)
    loop.run(once=True)
    text = scrape(metrics)
    assert value(text, "beat_bridge_cycle_duration_seconds_count") == 2
    assert value(text, "beat_bridge_slurm_command_duration_seconds_count", command="squeue") == 1
    assert env.fake.count("squeue") == 1
    running = _by_state(env)
    assert running == {("default", "processing"): 2}
    for state in STATES.values():
        assert value(text, "beat_bridge_splits", state=state, queue="default") == running.get(("default", state), 0)
    assert value(text, "beat_bridge_submitted_arrays_total", queue="default") == 1  # nothing new
    assert samples((tmp_path / "bridge.prom").read_text()) == samples(scrape(metrics))  # the textfile: the same


def _tag(env) -> str:
    with env.sessions() as session:
        return session.scalar(select(JobSplit.submission_tag).limit(1))


def test_a_failed_cycle_is_counted_and_the_split_gauges_keep_their_last_values(tmp_path, caplog):
    env = make_replay_env(tmp_path)
    declare(env, {"a": block(slots=2)})
    env.fake.then("sbatch", Answer("4242\n"))
    metrics = Metrics(process=False)
    loop = BridgeLoop(env.sessions, metrics.instrument(env.backend), env.config.poll, metrics=metrics)
    loop.run(once=True)
    before = value(scrape(metrics), "beat_bridge_splits", state="queued", queue="default")
    assert before == 2

    env.fake.then("squeue", SQUEUE_DOWN).then("sacct", Answer(returncode=1, stderr="sacct: error: down\n"))
    loop.sessions = _failing_reads(env.sessions)
    with caplog.at_level(logging.WARNING, logger="bridge.metrics"):
        loop.run(once=True)
    text = scrape(metrics)
    assert value(text, "beat_bridge_cycle_failures_total") == 1
    assert value(text, "beat_bridge_cycle_duration_seconds_count") == 2
    assert value(text, "beat_bridge_splits", state="queued", queue="default") == before
    assert "split counts not read" in caplog.text


def _failing_reads(sessions):
    """Sessions whose GROUP BY of bridge.metrics fails like a lost database (everything else works)."""
    from sqlalchemy.exc import OperationalError

    def make():
        session = sessions()
        execute = session.execute

        def failing(statement, *args, **kwargs):
            if "count(*)" in str(statement) and "GROUP BY" in str(statement):
                raise OperationalError(str(statement), {}, Exception("server closed the connection"))
            return execute(statement, *args, **kwargs)

        session.execute = failing
        return session
    return make


def test_stuck_unknown_and_snapshot_calls_come_from_the_loop(tmp_path):
    class Loop:
        last_cycle_seconds, unknown_states, stuck, snapshot_sacct_calls = 0.25, 2, 1, 3

    class Report:
        submitted, error = [Submission("t", 7, (1, 2), "cpu"), Submission("u", 8, (3,), "cpu")], None

    metrics = Metrics(process=False)
    metrics.cycle(Loop(), Report())
    Loop.snapshot_sacct_calls, Loop.stuck = 5, 0
    metrics.cycle(Loop(), Report())
    text = scrape(metrics)
    assert value(text, "beat_bridge_stuck_submissions") == 0
    assert value(text, "beat_bridge_unknown_state_splits") == 2
    assert value(text, "beat_bridge_snapshot_sacct_calls_total") == 5  # the loop's total, not counted twice
    assert value(text, "beat_bridge_submitted_arrays_total", queue="cpu") == 4
    assert value(text, "beat_bridge_submitted_splits_total", queue="cpu") == 6
    assert value(text, "beat_bridge_cycle_duration_seconds_bucket", le="0.25") == 2


def test_a_queue_whose_splits_are_gone_shows_zeros_not_stale_counts():
    metrics = Metrics(process=False)
    metrics.set_splits({("cpu", "P"): 4, ("big", "N"): 1}, queues=["cpu", "big", "idle"])
    metrics.set_splits({("big", "C"): 1}, queues=["cpu", "big", "idle"])
    text = scrape(metrics)
    got = {(dict(k[1])["queue"], dict(k[1])["state"]): v for k, v in samples(text).items()
           if k[0] == "beat_bridge_splits"}
    assert got == {(q, s): 1 if (q, s) == ("big", "completed") else 0 for q in ("cpu", "big", "idle")
                   for s in STATES.values()}


def test_an_unwritable_textfile_is_logged_not_raised(tmp_path, caplog):
    metrics = Metrics(textfile=tmp_path / "gone" / "bridge.prom", process=False)
    with caplog.at_level(logging.WARNING, logger="bridge.metrics"):
        metrics.write_textfile()
        metrics.write_textfile()
    assert caplog.text.count("not written") == 1  # once while the problem lasts, not every second


def test_the_http_endpoint_serves_the_registry(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = start_metrics(_config(tmp_path, f'[metrics]\nlisten = "127.0.0.1:{port}"\n'))
    try:
        metrics.set_splits({("cpu", "N"): 3})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
    finally:
        metrics.close()
    assert value(text, "beat_bridge_splits", state="queued", queue="cpu") == 3
    assert value(text, "beat_bridge_process_resident_memory_bytes") > 0


# --- reconcile ------------------------------------------------------------------------------


def _report(error=None):
    from datetime import datetime

    report = ReconcileReport("main", datetime(2026, 1, 1), error=error)
    report.divergences = [Divergence("orphan", "x", slurm_id="1_0"), Divergence("orphan", "y", slurm_id="1_1"),
                          Divergence("lost", "z", split_id=3)]
    report.watching = [Divergence("lost", "w", split_id=4)]
    return report


def test_reconcile_gauges_count_each_kind_and_are_written_beside_the_daemons_textfile(tmp_path):
    config = _config(tmp_path, f'[metrics]\ntextfile = "{tmp_path / "bb.prom"}"\n')
    path = write_reconcile(config, _report())
    assert path == tmp_path / "bb_reconcile.prom"
    text = path.read_text()
    assert {kind: value(text, "beat_bridge_reconcile_divergences", kind=kind) for kind in KINDS} == {
        "orphan": 2, "lost": 1, "divergent": 0, "stuck": 0}
    assert value(text, "beat_bridge_reconcile_watching") == 1
    assert value(text, "beat_bridge_reconcile_error") == 0


def test_a_reconcile_that_could_not_read_slurm_writes_no_counts():
    text = generate_latest(reconcile_registry(_report(error="squeue: timed out"), now=1.0e9)).decode()
    assert value(text, "beat_bridge_reconcile_error") == 1
    assert value(text, "beat_bridge_reconcile_last_run_timestamp_seconds") == 1.0e9
    assert not [k for k in samples(text) if k[0].startswith("beat_bridge_reconcile_divergences")]


def test_submit_limit_refusals_and_held_keys_are_counted(tmp_path):
    """sbatch refuses at a submit limit (sbatch's stderr as the dev cluster printed it): the array is halved
    twice, the last split is refused too and the key held; both show in the metrics, no split failed."""
    limit = Answer(stderr=(DATA / "stderr" / "sbatch_assoc_max_submit.txt").read_text(), returncode=1)
    env = make_replay_env(tmp_path)
    declare(env, {"a": block(slots=4, size=4)})
    env.fake.then("sbatch", limit, limit, limit)
    metrics = Metrics(process=False)
    loop = BridgeLoop(env.sessions, metrics.instrument(env.backend), env.config.poll, metrics=metrics)
    loop.run(once=True)
    text = scrape(metrics)
    assert env.fake.count("sbatch") == 3  # 4, 2, then 1 split: each refused
    assert value(text, "beat_bridge_submit_limit_refusals_total") == 3
    assert value(text, "beat_bridge_held_submit_limits") == 1
    assert _by_state(env) == {("default", "queued"): 4}  # back-pressure: still queued, unclaimed
    with env.sessions() as session:
        assert session.scalar(select(func.count()).where(JobSplit.submission_tag.is_not(None))) == 0
    assert not list(Path(env.config.spool_dir).glob("bb-*"))  # the refused arrays' spool files are gone
