"""A command imports what it uses: building the parser imports no heavy package, a read command no Slurm client.

Checked in a fresh interpreter (sys.modules after the command): start-up time is most of a
short command's time (bench/cli_latency.py), and every import the chosen command does not
need is paid by every user of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from config_files import MINIMAL, write

from bridge.app import open_app
from bridge.backend import PyslurmUnsupported
from bridge.db import upgrade

HEAVY = ("sqlalchemy.orm", "bridge.models", "jinja2", "paramiko", "matplotlib", "alembic")
SSH = """runner = "ssh"
[ssh]
host = "login.example.org"
key_file = "keys/id_ed25519"
known_hosts = "keys/known_hosts"
"""


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    done = subprocess.run([sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def bridge_toml(tmp_path: Path, extra: str = "") -> Path:
    return write(tmp_path, MINIMAL + extra)


def test_building_the_parser_imports_no_orm_template_ssh_chart_or_migration_package() -> None:
    loaded = modules_after("from bridge.cli import build_parser\nbuild_parser()")
    assert "bridge.cli_experiments" in loaded
    assert [name for name in HEAVY if name in loaded] == []


def test_read_commands_on_a_current_database_import_neither_alembic_nor_the_slurm_client_nor_paramiko(
        tmp_path: Path) -> None:
    """With runner = "ssh": `experiments list` and `status` never speak to Slurm, so they never build the runner."""
    config = bridge_toml(tmp_path, SSH)
    upgrade(f"sqlite:///{tmp_path / 'bridge.sqlite'}")
    loaded = modules_after("from bridge.cli import main\n"
                           f"assert main(['experiments', 'list', '--config', {str(config)!r}]) == 0\n"
                           f"assert main(['status', '--config', {str(config)!r}]) == 1  # no daemon runs")
    assert "bridge.models" in loaded  # the commands did read the database
    assert [name for name in ("alembic", "paramiko", "matplotlib", "bridge.slurm_client") if name in loaded] == []


def test_the_parsers_choice_lists_are_the_modules_own() -> None:
    """Named in the CLI modules so that building the parser imports neither the audit nor the schemas."""
    from bridge import audit, cli_audit, cli_schema, schema

    assert cli_audit.DIMENSIONS == audit.DIMENSIONS
    assert cli_schema.NAMES == tuple(sorted(schema.SCHEMAS))


def test_a_pyslurm_configuration_fails_before_a_database_is_made(tmp_path: Path, monkeypatch) -> None:
    """The backend is made on first use now; the runner's configuration is still checked first."""
    (tmp_path / "stand_in").mkdir()  # a pyslurm that is not there, first on the worker's path
    (tmp_path / "stand_in" / "pyslurm.py").write_text('raise ModuleNotFoundError("No module named \'pyslurm\'")\n')
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stand_in"))
    config = bridge_toml(tmp_path, 'runner = "pyslurm"\n')
    with pytest.raises(PyslurmUnsupported):
        open_app(config)
    assert not (tmp_path / "bridge.sqlite").exists()
