"""Slurm's times in UTC whatever the bridge host's time zone: every Slurm command runs with TZ=UTC.

sacct and squeue print Submit/Start/End, and read -S/-E, in the time zone of
their own process; the bridge stores naive UTC (submit_time is utcnow()). So the
runners give every command TZ=UTC (over SSH too), and the sacct window is sent
in UTC as stored. These tests put the bridge's process, and the runner's
configured environment, in Asia/Tokyo (UTC+9).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fakes import Answer, ReplayRunner

from bridge.runner import LocalRunner
from bridge.slurm_client import SlurmClient
from bridge.ssh_runner import SshRunner

FORGOTTEN = Answer(returncode=1, stderr="slurm_load_jobs error: Invalid job id specified\n")


class Element:
    slurm_job_id, slurm_element_id = "777", "777_0"

    def __init__(self, submitted: datetime) -> None:
        self.submit_time = submitted


def test_the_local_runner_runs_every_command_in_utc(tokyo_tz):
    assert LocalRunner().run(["date", "+%z"]).stdout == "+0000\n"
    assert LocalRunner(env={"TZ": tokyo_tz}).run(["date", "+%z"]).stdout == "+0000\n"  # not even configured


def test_the_ssh_runner_sets_tz_utc_last_in_the_remote_environment(tmp_path):
    runner = SshRunner("login", 22, None, tmp_path / "key", None, env={"TZ": "Asia/Tokyo", "SLURM_CONF": "/s.conf"})
    line = runner.command_line(["sacct", "-X"], timeout=30)
    assert line == "timeout -k 5 31.000 env TZ=Asia/Tokyo SLURM_CONF=/s.conf TZ=UTC sacct -X"  # env: last wins


def test_the_sacct_window_is_sent_in_utc_as_the_submit_time_is_stored(tokyo_tz):
    fake = ReplayRunner().then("squeue", FORGOTTEN).then("sacct", Answer(""))
    submitted = datetime(2026, 12, 1, 12, 0)  # naive UTC, as JobSplit.submit_time
    SlurmClient(fake).status([Element(submitted)])
    (argv,) = fake.of("sacct")
    assert datetime.fromisoformat(argv[argv.index("-S") + 1]) == submitted - timedelta(minutes=5)
