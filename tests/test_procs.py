"""Daemons tracked by pid files: start, detect, stop exactly ours, ignore stale files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bridge.devcluster import procs


def _sleeper(tmp_path: Path) -> procs.Daemon:
    return procs.Daemon("sleeper", (shutil.which("sleep"), "60"), tmp_path / "s.pid", tmp_path / "s.log")


def test_start_then_stop(tmp_path: Path):
    daemon = _sleeper(tmp_path)
    pid = procs.start(daemon, {})
    assert procs.running_pid(daemon) == pid
    assert procs.stop(daemon) is True
    assert procs.running_pid(daemon) is None and not daemon.pid_file.exists()
    assert procs.stop(daemon) is False


def test_a_stale_pid_file_naming_another_program_is_not_ours(tmp_path: Path):
    daemon = _sleeper(tmp_path)
    daemon.pid_file.write_text(f"{os.getpid()}\n")  # this pid runs, but it is python, not `sleep`
    assert procs.running_pid(daemon) is None
    assert procs.stop(daemon) is False  # and it was not signalled


def test_garbage_pid_file_reads_as_none(tmp_path: Path):
    (tmp_path / "x.pid").write_text("not a pid")
    assert procs.read_pid(tmp_path / "x.pid") is None
    assert procs.read_pid(tmp_path / "missing.pid") is None
