"""One contract for both runners, on the real cluster: the LocalRunner and the SshRunner through a real sshd.

Callers must never know which runner ran: same results, same errors, same quoting.
The SSH-only part (connection reuse and reconnection, host keys, authentication)
follows the contract tests.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bridge.errors import CommandError, CommandTimeout
from bridge.runner import LocalRunner
from bridge.sacct import parse_sacct
from bridge.slurm import parse_sbatch_parsable, sacct_argv, sbatch_argv
from bridge.ssh_runner import HostKeyMismatchError, SshConnectionLost, SshError, UnknownHostKeyError

HOSTILE = [
    "$(touch {m})", "`touch {m}`", "; touch {m}", "&& touch {m}", "| touch {m}",
    "' ; touch {m} ; '", '" ; touch {m} ; "', "line\ntouch {m}", "a  b", "*", "$HOME",
    "{m}", "-n", "\\", "", "x=y", "é ü 日本",
]


def _gone(pattern: str, within: float) -> bool:
    """True when no process matches `pgrep -f pattern` before `within` seconds pass."""
    deadline = time.monotonic() + within
    while LocalRunner().run(["pgrep", "-f", pattern], timeout=10).returncode == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _sessions(sshd) -> set[str]:
    """Pids of the sshd processes serving connections (children of the listener)."""
    listener = (sshd.dir / "sshd.pid").read_text().strip()
    return set(LocalRunner().run(["pgrep", "-P", listener], timeout=10).stdout.split())


# --- the contract, for both runners ------------------------------------------------------


def test_returns_exit_code_stdout_and_stderr(any_runner):
    result = any_runner.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.argv == ("sh", "-c", "echo out; echo err >&2; exit 3")
    with pytest.raises(CommandError) as e:
        result.check()
    assert e.value.returncode == 3 and "err" in str(e.value)
    assert any_runner.run(["true"]).ok


def test_stdin_reaches_the_command_unchanged(any_runner, tmp_path):
    marker = tmp_path / "stdin-ran"
    text = f"#!/bin/bash\n$(touch {marker}) `touch {marker}` ; 'quote \" é\n\n  trailing  "
    assert any_runner.run(["cat"], stdin=text).stdout == text
    assert any_runner.run(["wc", "-c"], stdin="").stdout.strip() == "0"
    assert not marker.exists()


def test_no_stdin_means_end_of_file_not_a_hang(any_runner):
    assert any_runner.run(["cat"], timeout=10).stdout == ""


def test_big_stdin_stdout_and_stderr_at_once_do_not_deadlock(any_runner):
    # More than paramiko's 2 MiB window each way, stderr written first: a runner that
    # wrote all stdin, or read all stdout, before the rest would hang here.
    data = "0123456789abcdef" * (3 * 65536)  # 3 MiB
    script = "head -c 3145728 /dev/zero | tr '\\0' e >&2; cat"
    result = any_runner.run(["sh", "-c", script], stdin=data, timeout=60)
    assert result.stdout == data and result.stderr == "e" * 3145728


def test_hostile_argv_values_arrive_as_single_literal_arguments(any_runner, tmp_path):
    marker = tmp_path / "argv-ran"
    values = [v.format(m=marker) for v in HOSTILE]
    result = any_runner.run(["printf", "%s\\0", *values]).check()
    assert result.stdout.split("\0")[:-1] == values
    assert not marker.exists()


def test_a_hostile_program_name_is_not_run_through_a_shell(any_runner, tmp_path):
    marker = tmp_path / "name-ran"
    with pytest.raises(CommandError):
        any_runner.run([f"$(touch {marker})"])
    assert not marker.exists()


def test_timeout_raises_command_timeout_and_the_command_does_not_survive(any_runner):
    seconds = f"29.{uuid.uuid4().int % 10**9:09d}"  # a unique command line to look for
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as e:
        any_runner.run(["sleep", seconds], timeout=1)
    assert time.monotonic() - started < 5
    assert e.value.argv == ["sleep", seconds] and e.value.returncode is None
    assert "timed out" in str(e.value)
    assert _gone(f"sleep {seconds}", within=10), "the timed-out command is still running"


def test_a_missing_program_is_a_command_error_with_exit_127(any_runner):
    with pytest.raises(CommandError) as e:
        any_runner.run(["/nonexistent/sbatch", "--parsable"])
    assert e.value.returncode == 127 and "/nonexistent/sbatch" in str(e.value)
    assert not isinstance(e.value, CommandTimeout)


def test_sbatch_script_on_stdin_then_sacct_sees_the_array_completed(any_runner):
    name = f"bb-contract-{uuid.uuid4().hex[:8]}"
    script = (f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --time=1\n"
              "#SBATCH --output=/dev/null\n#SBATCH --array=0-2\ntrue\n")
    since = datetime.now() - timedelta(minutes=1)
    job_id = parse_sbatch_parsable(any_runner.run(sbatch_argv(), stdin=script, timeout=30).check().stdout)

    deadline = time.monotonic() + 90
    while True:
        text = any_runner.run(sacct_argv(since, job_ids=[job_id]), timeout=30).check().stdout
        elements = [r for r in parse_sacct(text) if r.is_element and not r.pending_range]
        if len(elements) == 3 and all(r.state == "COMPLETED" for r in elements):
            break
        assert time.monotonic() < deadline, f"array {job_id} not COMPLETED in 90 s:\n{text}"
        time.sleep(1.0)
    assert sorted(r.array_task_id for r in elements) == [0, 1, 2]
    assert {(r.array_job_id, r.name, r.exit_code) for r in elements} == {(job_id, name, 0)}


# --- SSH only: connection, host keys, authentication -------------------------------------


def test_ssh_environment_values_are_quoted_too(sshd, tmp_path):
    marker = tmp_path / "env-ran"
    value = f"$(touch {marker}) `touch {marker}`; 'x' \"y\"\nz"
    with sshd.runner(env={"BRIDGE_TEST_VALUE": value}) as runner:
        assert runner.run(["printenv", "BRIDGE_TEST_VALUE"]).stdout == value + "\n"
    assert not marker.exists()


def test_ssh_connection_is_reused_across_runs(sshd):
    before = sshd.accepted_logins()
    with sshd.runner() as runner:
        assert runner.run(["echo", "one"]).stdout == "one\n"
        assert runner.run(["echo", "two"]).stdout == "two\n"
        assert runner.run(["false"]).returncode == 1
    assert sshd.accepted_logins() == before + 1


def test_ssh_reconnects_once_when_the_connection_dropped(sshd):
    with sshd.runner() as runner:
        old = _sessions(sshd)
        assert runner.run(["echo", "one"]).ok
        ours = _sessions(sshd) - old
        assert ours, "no sshd process for our connection"
        LocalRunner().run(["kill", *sorted(ours)]).check()  # the server side of our connection dies
        time.sleep(0.5)
        before = sshd.accepted_logins()
        assert runner.run(["echo", "two"]).stdout == "two\n"
        assert sshd.accepted_logins() == before + 1


def test_ssh_close_then_run_connects_again(sshd):
    runner = sshd.runner()
    before = sshd.accepted_logins()
    runner.run(["true"])
    runner.close()
    runner.close()  # twice is harmless
    runner.run(["true"])
    runner.close()
    assert sshd.accepted_logins() == before + 2


def test_ssh_unknown_host_key_is_refused_naming_host_port_and_file(sshd, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    with pytest.raises(UnknownHostKeyError) as e:
        sshd.runner(known_hosts=known_hosts).run(["true"])
    message = str(e.value)
    assert f"[127.0.0.1]:{sshd.port}" in message and str(known_hosts) in message
    assert "ssh-ed25519 SHA256:" in message and "allow_unknown_hosts" in message


def test_ssh_changed_host_key_is_refused_even_when_unknown_hosts_are_allowed(sshd, tmp_path):
    other = tmp_path / "other"
    LocalRunner().run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)]).check()
    key_type, key = (tmp_path / "other.pub").read_text().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {key_type} {key}\n")
    for allow in (False, True):
        with pytest.raises(HostKeyMismatchError) as e:
            sshd.runner(known_hosts=known_hosts, allow_unknown_hosts=allow).run(["true"])
        assert str(known_hosts) in str(e.value) and "differs" in str(e.value)


def test_ssh_unknown_host_is_accepted_with_a_warning_when_allowed(sshd, tmp_path, caplog):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    with caplog.at_level(logging.WARNING, logger="bridge.ssh_runner"):
        with sshd.runner(known_hosts=known_hosts, allow_unknown_hosts=True) as runner:
            assert runner.run(["echo", "ok"]).stdout == "ok\n"
    assert "accepting unknown SSH host key" in caplog.text
    assert known_hosts.read_text() == ""  # nothing is added behind the admin's back


def test_ssh_missing_known_hosts_file_is_named(sshd, tmp_path):
    with pytest.raises(SshError) as e:
        sshd.runner(known_hosts=tmp_path / "absent").run(["true"])
    assert str(tmp_path / "absent") in str(e.value)


def test_ssh_key_that_is_not_authorized_is_refused(sshd, tmp_path):
    key = tmp_path / "stranger"
    LocalRunner().run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)]).check()
    with pytest.raises(SshError) as e:
        sshd.runner(key_file=key).run(["true"])
    assert "key authentication" in str(e.value) and str(key) in str(e.value)


def test_ssh_nothing_listening_is_a_clear_error(sshd):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SshError) as e:
        sshd.runner(port=port, connect_timeout=2).run(["true"])
    assert f"127.0.0.1:{port}" in str(e.value) and "cannot connect" in str(e.value)


def test_ssh_runner_needs_a_key_file(sshd):
    with pytest.raises(SshError, match="key_file"):
        sshd.runner(key_file=None)


def test_sshd_fixture_gives_a_known_hosts_line_for_its_port(sshd):
    assert sshd.host_key_line.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    assert Path(sshd.known_hosts).read_text() == sshd.host_key_line + "\n"


def test_ssh_missing_key_file_is_named(sshd, tmp_path):
    with pytest.raises(SshError) as e:
        sshd.runner(key_file=tmp_path / "absent_key").run(["true"])
    assert str(tmp_path / "absent_key") in str(e.value) and "does not exist" in str(e.value)


def test_ssh_runs_from_several_threads_share_one_connection(sshd):
    before = sshd.accepted_logins()
    with sshd.runner() as runner, ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: runner.run(["echo", str(i)]).stdout, range(8)))
    assert results == [f"{i}\n" for i in range(8)]
    assert sshd.accepted_logins() == before + 1


def test_ssh_connection_lost_during_a_command_is_reported_as_such(sshd):
    old = _sessions(sshd)
    with sshd.runner() as runner, ThreadPoolExecutor(1) as pool:
        running = pool.submit(runner.run, ["sleep", "6"], None, 30)  # ends by itself soon after
        deadline = time.monotonic() + 10
        while not (_sessions(sshd) - old) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the command has started
        LocalRunner().run(["kill", *sorted(_sessions(sshd) - old)]).check()
        with pytest.raises(SshConnectionLost) as e:
            running.result(timeout=15)
    assert e.value.returncode is None and "may or may not have run" in str(e.value)


def test_every_command_runs_in_utc_whatever_the_configured_tz(sshd, slurm_cluster, tokyo_tz):
    """sacct/squeue print and read times in their own TZ; the bridge stores UTC (bridge.runner.COMMAND_ENV)."""
    env = {**slurm_cluster.spec.env(), "TZ": tokyo_tz}
    with sshd.runner(env=env) as remote:
        for runner in (LocalRunner(env=env), remote):
            assert runner.run(["date", "+%z"]).stdout == "+0000\n", runner
