"""make_runner and make_backend from real config files; a pyslurm that cannot work is refused in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from config_files import MINIMAL, write

from bridge.backend import PyslurmUnsupported, make_backend, make_runner
from bridge.config import load_config
from bridge.errors import ConfigError
from bridge.pyslurm_client import PyslurmClient
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


# Stand-ins for a pyslurm that cannot work here, found first on the worker's PYTHONPATH: the check under
# test runs in the real worker process; only the module it loads is replaced.
MISSING = 'raise ModuleNotFoundError("No module named \'pyslurm\'")\n'
BROKEN = 'raise OSError("libslurm.so.41: cannot open shared object file")\n'
OTHER_SLURM = ('__version__ = "25.11.0"\n'
               'def slurm_api_version():\n    return (25, 11, 0)\n'
               'class config:\n    def get(self):\n        return {"version": "22.05.8", "cluster_name": "c"}\n')


def stand_in(tmp_path: Path, monkeypatch, text: str) -> None:
    directory = tmp_path / "stand_in"
    directory.mkdir()
    (directory / "pyslurm.py").write_text(text)
    monkeypatch.setenv("PYTHONPATH", str(directory))


def test_pyslurm_missing_is_one_line_naming_what_it_needs_what_the_cluster_runs_and_the_build(tmp_path,
                                                                                            monkeypatch):
    stand_in(tmp_path, monkeypatch, MISSING)
    path = config_file(tmp_path, 'runner = "pyslurm"\n')
    with pytest.raises(PyslurmUnsupported) as e:
        make_backend(load_config(path))
    message = str(e.value)
    assert str(path) in message and "\n" not in message
    assert "needs pyslurm built for the cluster's Slurm major version" in message
    assert "this cluster runs " in message  # a version from sbatch --version, or why it is unknown
    assert "No module named 'pyslurm'" in message
    assert "SLURM_LIB_DIR=/usr/lib/x86_64-linux-gnu SLURM_INCLUDE_DIR=/usr/include pip install" in message
    assert "Traceback" not in message


def test_pyslurm_built_for_another_slurm_is_refused_naming_both_versions(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, OTHER_SLURM)
    with pytest.raises(PyslurmUnsupported) as e:
        make_backend(load_config(config_file(tmp_path, 'runner = "pyslurm"\n')))
    assert "pyslurm 25.11.0 is built for Slurm 25.11.0" in str(e.value)
    assert "this cluster runs Slurm 22.05.8" in str(e.value)


def test_pyslurm_that_fails_to_load_is_reported_not_raised(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, BROKEN)
    with pytest.raises(PyslurmUnsupported) as e:
        make_backend(load_config(config_file(tmp_path, 'runner = "pyslurm"\n')))
    assert "OSError: libslurm.so.41: cannot open shared object file" in str(e.value)


def test_cluster_version_is_named_when_sbatch_answers(tmp_path, slurm_cluster, monkeypatch):
    stand_in(tmp_path, monkeypatch, MISSING)
    slurm_conf = slurm_cluster.spec.slurm_conf
    path = config_file(tmp_path, f'runner = "pyslurm"\n[slurm]\nconf = "{slurm_conf}"\n')
    with pytest.raises(PyslurmUnsupported) as e:
        make_backend(load_config(path))
    assert "this cluster runs Slurm 22.05" in str(e.value)


def test_pyslurm_for_this_cluster_gives_the_pyslurm_client(tmp_path, slurm_cluster):
    slurm_conf = slurm_cluster.spec.slurm_conf
    backend = make_backend(load_config(config_file(tmp_path, f'runner = "pyslurm"\n[slurm]\nconf = "{slurm_conf}"\n')))
    try:
        assert isinstance(backend.client, PyslurmClient)
        assert backend.client.version().startswith("22.05")
    finally:
        backend.client.close()


def test_pyslurm_through_the_cli_is_one_error_line_and_exit_1_not_a_traceback(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, MISSING)
    path = config_file(tmp_path, 'runner = "pyslurm"\n')
    result = LocalRunner().run([sys.executable, "-m", "bridge.cli", "queues", "check", "--config", str(path)],
                               timeout=60)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("beat-bridge: error:"), result.stderr
    assert "No module named 'pyslurm'" in result.stderr
