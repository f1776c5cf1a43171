"""deploy/: the systemd unit passes `systemd-analyze verify`, and it, the production bridge.toml and the guide agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from required_parts import need

from bridge.config import load_config
from bridge.notify import watchdog_warning

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "beat-bridge.service"
PRODUCTION = REPO / "deploy" / "bridge.production.toml"
GUIDE = REPO / "docs" / "deployment.md"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")  # Debian's (usrmerge) units: sysinit.target & co.


def unit_values(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> its values in order (systemd allows a key more than once)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault(f"{section}.{key}", []).append(value)
    return values


def verify(unit_text: str, root: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` of the unit installed in a copy of this system's unit tree under `root`.

    Its ExecStart program must exist: a stand-in is put at the unit's own path inside `root`,
    so the file is checked exactly as shipped (no path rewritten).
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        need("systemd-analyze", "install Debian's systemd package (scripts/setup.sh does)")
    if not (SYSTEM_UNITS / "sysinit.target").is_file():
        need("systemd's units", f"{SYSTEM_UNITS}/sysinit.target is missing (Debian's systemd package has it)")
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    program = Path(unit_values(unit_text)["Service.ExecStart"][0].split()[0].lstrip("-@:+!"))
    stand_in = root / program.relative_to("/")
    stand_in.parent.mkdir(parents=True)
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "etc/systemd/system" / UNIT.name).write_text(unit_text)
    return subprocess.run([analyze, "verify", f"--root={root}", "--man=no", UNIT.name],
                          capture_output=True, text=True, timeout=60)


def test_the_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path):
    result = verify(UNIT.read_text(), tmp_path / "root")
    # verify exits 0 on some problems (an unknown key, a bad value: "ignoring"): any output is a failure
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_verify_reports_a_broken_copy_of_the_unit(tmp_path):
    """The check above can fail: a mistyped key and a bad value are reported."""
    broken = UNIT.read_text().replace("Type=notify", "Type=notfiy\nWatchdogSecs=10min")
    result = verify(broken, tmp_path / "root")
    assert "notfiy" in result.stderr and "WatchdogSecs" in result.stderr, result.stderr


def test_the_unit_is_a_watched_hardened_notify_service_of_a_service_user():
    unit = unit_values(UNIT.read_text())
    assert unit["Service.Type"] == ["notify"] and unit["Service.Restart"] == ["on-failure"]
    assert unit["Service.ExecStart"][0].endswith("/beat-bridge run")
    assert unit["Service.User"][0] not in ("", "root", "0")
    assert unit["Service.NoNewPrivileges"] == ["yes"] and unit["Service.ProtectSystem"] == ["strict"]
    assert unit["Service.KillMode"] == ["mixed"]  # SIGTERM to the daemon only: it finishes its cycle


def test_the_production_config_loads_with_the_bridges_own_loader(tmp_path):
    """As an admin installs it: bridge.toml with the queues.toml it names beside it (the shipped mapping here)."""
    shutil.copy(PRODUCTION, tmp_path / "bridge.toml")
    shutil.copy(REPO / "config" / "queues.toml", tmp_path / "queues.toml")
    config = load_config(tmp_path / "bridge.toml")
    assert config.runner == "ssh" and config.ssh is not None
    assert config.ssh.key_file.is_absolute() and config.ssh.known_hosts is not None
    assert config.ssh.allow_unknown_hosts is False
    assert config.database_url.startswith("postgresql+psycopg://")
    assert config.deployment != "main"  # not the development checkout's id
    assert config.queues_file == tmp_path / "queues.toml" and config.queues


def test_the_unit_lets_the_daemon_write_what_the_production_config_names(tmp_path):
    """spool_dir and cache_root are under ReadWritePaths and RequiresMountsFor; the watchdog fits [poll]."""
    shutil.copy(PRODUCTION, tmp_path / "bridge.toml")
    shutil.copy(REPO / "config" / "queues.toml", tmp_path / "queues.toml")
    config = load_config(tmp_path / "bridge.toml")
    unit = unit_values(UNIT.read_text())
    writable = [Path(p) for v in unit["Service.ReadWritePaths"] for p in v.split()]
    mounts = [Path(p) for v in unit["Unit.RequiresMountsFor"] for p in v.split()]
    for directory in (config.spool_dir, config.cache_root):
        assert any(directory.is_relative_to(p) for p in writable), (directory, writable)
        assert any(directory.is_relative_to(p) for p in mounts), (directory, mounts)
    watchdog = unit["Service.WatchdogSec"][0]
    minutes = re.fullmatch(r"(\d+)min", watchdog)
    assert minutes, f"WatchdogSec={watchdog}: this test reads minutes"
    assert watchdog_warning(int(minutes.group(1)) * 60.0, config.poll.max_interval) is None


@pytest.mark.parametrize("path", ["/etc/beat-bridge/bridge.toml", "/opt/beat-bridge/venv/bin/beat-bridge"])
def test_the_guide_installs_what_the_unit_names(path):
    unit = UNIT.read_text()
    assert path in unit and path in GUIDE.read_text(), path
