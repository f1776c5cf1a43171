"""The CLI as a user runs it (a subprocess): a fresh checkout's `db upgrade`, and one stderr line per refusal."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_db_upgrade_on_a_fresh_checkout_creates_var(tmp_path: Path) -> None:
    """config/bridge.toml names ../var/bridge.sqlite; a fresh clone has no var/ (seen failing: 'unable to open')."""
    (tmp_path / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    done = _cli("db", "upgrade", "--config", "config/bridge.toml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "var" / "bridge.sqlite").is_file()
    assert "schema is current" in done.stdout and done.stderr == ""


@pytest.mark.parametrize(("args", "says"), [
    (("experiments", "cancel", "99999999999999999999"), "an integer from 1 to 2147483647"),
    (("experiments", "list", "--config", "bad.toml"), "not UTF-8"),
    (("experiments", "add", str(REPO / "tests/data/bad/declarations/name-escape.json")), "control characters"),
])
def test_a_refusal_is_one_line_on_stderr(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    (tmp_path / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    (tmp_path / "bad.toml").write_bytes(b'cache_root = "caf\xe9"\n')
    if "--config" not in args:
        args = (*args, "--config", "config/bridge.toml")
    done = _cli(*args, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in done.stderr, done.stderr
