"""`beat-bridge status`: the heartbeat the loop writes (bridge.heartbeat) and what status makes of it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from fakes import Recording
from replay_env import block, declare, make_replay_env, submit

from bridge import heartbeat
from bridge.cli import main
from bridge.config import PollConfig
from bridge.daemon_status import describe, render, split_counts
from bridge.db import create_session_factory
from bridge.models import utcnow
from bridge.models_daemon import DaemonHeartbeat
from poller.loop import BridgeLoop


@dataclass
class Poll:
    active: int = 0
    squeue_calls: int = 0
    sacct_calls: int = 0


@dataclass
class Report:
    poll: Poll | None
    error: str | None = None


def test_beats_count_failures_in_a_row_keep_the_last_error_and_when_slurm_last_answered(db_url):
    sessions = create_session_factory(db_url)
    with sessions() as session:
        assert heartbeat.read(session) == heartbeat.Heartbeat()  # the row exists, empty: no daemon yet
    heartbeat.beat(sessions, Report(Poll(active=3, squeue_calls=1)), cycles=1, cycle_s=0.2, next_in_s=1.0)
    with sessions() as session:
        answered = heartbeat.read(session).slurm_answered_at
    for cycle in (2, 3):
        heartbeat.beat(sessions, Report(None, "squeue failed (timed out) and sacct failed: refused"), cycle, 60.5,
                       next_in_s=2.0 * cycle)
    with sessions() as session:
        failing = heartbeat.read(session)
    assert (failing.failures, failing.next_in_s, failing.slurm_answered_at) == (2, 6.0, answered)
    assert failing.last_error.startswith("squeue failed") and failing.pid == os.getpid()
    heartbeat.beat(sessions, Report(Poll(active=0)), cycles=4, cycle_s=0.1, next_in_s=10.0)  # nothing on Slurm
    with sessions() as session:
        recovered = heartbeat.read(session)
        assert session.query(DaemonHeartbeat).count() == 1
    assert (recovered.failures, recovered.cycles, recovered.slurm_calls) == (0, 4, 1)
    assert recovered.last_error == failing.last_error and recovered.slurm_answered_at == answered


def test_status_says_no_daemon_past_the_announced_wait_and_its_grace():
    now = utcnow()
    beat = heartbeat.Heartbeat(host="svc1", pid=77, beat_at=now - timedelta(seconds=50), cycle_s=0.4,
                               next_in_s=10.0, cycles=12, failures=3, last_error="database error: gone",
                               last_error_at=now - timedelta(seconds=50), slurm_answered_at=now - timedelta(hours=1),
                               slurm_calls=1, active=0)
    counts = {"waiting for submission": 1, "being submitted": 0, "queued on Slurm": 2, "processing": 3,
              "cancelling": 0, "stuck submissions": 0}
    alive = describe(beat, counts, {"scheduled": 1}, now, stale_after=45.0)
    assert alive["running"] and alive["last_error"]["backing_off_s"] == 10.0
    lines = render(alive)
    assert lines[0].startswith("daemon running: pid 77 on svc1, 12 cycles")
    assert lines[1].startswith("last error (3 failed cycles in a row, backing off 10.0 s)")
    assert lines[3] == ("active splits: 1 waiting for submission, 0 being submitted, 2 queued on Slurm, "
                        "3 processing, 0 cancelling; 0 submissions stuck")
    gone = describe(beat, counts, {}, now, stale_after=30.0)
    assert not gone["running"]
    assert render(gone)[0] == (f"no daemon running (last seen {beat.beat_at:%Y-%m-%d %H:%M:%S} UTC, 50 s ago, "
                               "pid 77 on svc1)")
    assert render(describe(heartbeat.Heartbeat(), counts, {}, now, 30.0))[0] == \
        "no daemon running (never seen on this database)"


def test_the_loop_beats_once_per_cycle_and_status_reads_it(tmp_path, capsys):
    env = make_replay_env(tmp_path)
    declare(env, {"a": block(slots=2)})
    sub = submit(env)
    config = ["--config", str(tmp_path / "bridge.toml")]
    assert main(["status", *config]) == 1
    assert capsys.readouterr().out.splitlines()[0] == "no daemon running (never seen on this database)"
    env.fake.always("squeue", Recording.load("pending").answer("squeue", sub.job_id, sub.tag))  # still pending
    loop = BridgeLoop(env.sessions, env.backend, PollConfig(min_interval=0.01, max_interval=0.02))
    loop.run(done=lambda session: loop.cycles >= 3)
    assert main(["status", *config]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"daemon running: pid {os.getpid()} on ") and ", 3 cycles; " in lines[0]
    assert lines[1] == "Slurm: answered the last cycle's poll (1 calls, 2 active splits)"
    with env.sessions() as session:
        assert split_counts(session)["queued on Slurm"] == 2
    loop.stop()  # as SIGTERM does: the loop ends after its cycle and says it stopped
    loop.run()
    assert main(["status", *config]) == 1
    assert capsys.readouterr().out.startswith("no daemon running (stopped cleanly at ")
