"""make_runner: the runner bridge.toml names, built from real config files; pyslurm refused clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from config_files import MINIMAL, write

from bridge.backend import PyslurmUnsupported, make_runner
from bridge.config import load_config
from bridge.errors import ConfigError
from bridge.runner import LocalRunner
from bridge.ssh_runner import SshRunner


def config_file(tmp_path: Path, text: str) -> Path:
    return write(tmp_path, MINIMAL + text)


def test_local_runner_gets_slurm_conf_and_env_from_the_config(tmp_path):
    path = config_file(tmp_path, 'runner = "local"\n[slurm]\nconf = "etc/slurm.conf"\n'
                                 'env = { SLURM_TIME_FORMAT = "standard" }\n')
    runner = make_runner(load_config(path))
    assert isinstance(runner, LocalRunner)
    result = runner.run(["sh", "-c", 'printf "%s|%s" "$SLURM_CONF" "$SLURM_TIME_FORMAT"'])
    assert result.stdout == f"{tmp_path / 'etc' / 'slurm.conf'}|standard"


def test_local_is_the_default_runner(tmp_path):
    assert isinstance(make_runner(load_config(config_file(tmp_path, ""))), LocalRunner)


def test_ssh_runner_is_built_from_the_ssh_table_without_connecting(tmp_path):
    path = config_file(tmp_path, """runner = "ssh"
[slurm]
conf = "/etc/slurm/slurm.conf"
[ssh]
host = "login.example.org"
port = 2222
user = "beat"
key_file = "keys/id_ed25519"
known_hosts = "keys/known_hosts"
connect_timeout = 3
""")
    runner = make_runner(load_config(path))
    assert isinstance(runner, SshRunner)
    assert (runner.host, runner.port, runner.user, runner.connect_timeout) == ("login.example.org", 2222, "beat", 3.0)
    assert runner.key_file == tmp_path / "keys" / "id_ed25519"
    assert runner.known_hosts == tmp_path / "keys" / "known_hosts"
    assert not runner.allow_unknown_hosts
    assert runner.command_line(["sbatch", "--parsable"], timeout=30) == (
        "timeout -k 5 31.000 env SLURM_CONF=/etc/slurm/slurm.conf TZ=UTC sbatch --parsable"
    )


def test_ssh_without_an_ssh_table_names_the_file_and_the_table(tmp_path):
    path = config_file(tmp_path, 'runner = "ssh"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and "ssh" in str(e.value)


def test_ssh_without_a_key_file_is_refused_naming_the_key(tmp_path):
    path = config_file(tmp_path, 'runner = "ssh"\n[ssh]\nhost = "login"\n')
    with pytest.raises(ConfigError) as e:
        make_runner(load_config(path))
    assert str(path) in str(e.value) and "[ssh] key_file" in str(e.value)


def test_pyslurm_is_refused_naming_the_versions_and_the_missing_module(tmp_path):
    path = config_file(tmp_path, 'runner = "pyslurm"\n')
    with pytest.raises(PyslurmUnsupported) as e:
        make_runner(load_config(path))
    message = str(e.value)
    assert str(path) in message
    assert "25.11" in message and "17.11/18.08" in message
    assert "no pyslurm backend" in message
    assert "This cluster runs " in message  # a version from sbatch --version, or why it is unknown
    assert "pyslurm module is not installed" in message
    assert "Traceback" not in message


def test_pyslurm_installed_is_named_with_its_version_and_still_refused(tmp_path, monkeypatch):
    # A stand-in module: no real pyslurm can be installed for this cluster's Slurm 22.05.
    (tmp_path / "pyslurm.py").write_text('__version__ = "25.11.0"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pyslurm", raising=False)
    with pytest.raises(PyslurmUnsupported) as e:
        make_runner(load_config(config_file(tmp_path, 'runner = "pyslurm"\n')))
    assert "pyslurm module 25.11.0 is installed, but it is still unsupported" in str(e.value)


def test_pyslurm_that_fails_to_import_is_reported_not_raised(tmp_path, monkeypatch):
    (tmp_path / "pyslurm.py").write_text('raise OSError("libslurm.so.41: cannot open shared object file")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pyslurm", raising=False)
    with pytest.raises(PyslurmUnsupported) as e:
        make_runner(load_config(config_file(tmp_path, 'runner = "pyslurm"\n')))
    assert "installed but cannot be imported (OSError: libslurm.so.41" in str(e.value)


def test_cluster_version_is_named_when_sbatch_answers(tmp_path, slurm_cluster):
    slurm_conf = slurm_cluster.spec.slurm_conf
    path = config_file(tmp_path, f'runner = "pyslurm"\n[slurm]\nconf = "{slurm_conf}"\n')
    with pytest.raises(PyslurmUnsupported) as e:
        make_runner(load_config(path))
    assert "This cluster runs Slurm 22.05" in str(e.value)


def test_pyslurm_through_the_cli_is_one_error_line_and_exit_1_not_a_traceback(tmp_path):
    path = config_file(tmp_path, 'runner = "pyslurm"\n')
    result = LocalRunner().run([sys.executable, "-m", "bridge.cli", "queues", "check", "--config", str(path)],
                               timeout=60)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert "beat-bridge: error:" in result.stderr and "25.11" in result.stderr
    assert "no pyslurm backend" in result.stderr
