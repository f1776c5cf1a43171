"""bridge.toml + queues.toml -> frozen dataclasses; every error names file, key, value, choices."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from config_files import MINIMAL, QUEUES, write

from bridge.config import BridgeConfig, load_config, resolve_config_path
from bridge.errors import ConfigError
from bridge.queues_config import EnvironmentRef, load_queues

REPO = Path(__file__).resolve().parent.parent


def error_of(tmp_path: Path, bridge: str, queues: str = QUEUES) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bridge, queues))
    return str(info.value)


def test_shipped_example_config_loads() -> None:
    config = load_config(REPO / "config" / "bridge.toml")
    assert config.runner == "local"
    assert set(config.queues) == {"default", "long", "debug"}
    assert {q.partition for q in config.queues.values()} == {"cpu", "long", "debug"}
    for queue in config.queues.values():
        assert queue.memory_limit <= 1000 and queue.cores_per_slot == 1
    assert config.queues["debug"].time_limit <= 5
    assert config.queues["long"].environments == (EnvironmentRef("Python", "3.11"),)
    assert config.cache_root == (REPO / "var" / "cache").resolve()
    assert config.database_url == f"sqlite:///{(REPO / 'var' / 'bridge.sqlite').resolve()}"


def test_minimal_config_gets_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.deployment == "main" and (config.reconcile.misses, config.reconcile.grace) == (3, 300.0)
    assert config.cache_root == tmp_path / "cache"
    assert config.spool_dir == tmp_path / "spool"
    assert config.queues_file == tmp_path / "queues.toml"
    assert config.database_url == f"sqlite:///{tmp_path / 'bridge.sqlite'}"
    assert config.runner == "local" and config.ssh is None
    assert (config.retry.attempts, config.poll.min_interval, config.poll.max_interval) == (5, 1.0, 10.0)
    assert (config.split_errors, config.cache_errors) == (3, 5)


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.runner = "ssh"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.queues["default"].memory_limit = 1  # type: ignore[misc]


def test_full_config(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    text = MINIMAL + """
runner = "ssh"
queues = "queues.toml"
templates_dir = "tpl"
split_errors = 2
cache_errors = 7
[database]
url = "postgresql+psycopg://beat@db/beat"
[ssh]
host = "login"
port = 2222
user = "beat"
key_file = "keys/id"
known_hosts = "/etc/ssh/known"
allow_unknown_hosts = true
connect_timeout = 3
[slurm]
conf = "/etc/slurm/slurm.conf"
env = { SLURM_TIME_FORMAT = "standard" }
[poll]
min_interval = 1
max_interval = 10.5
[retry]
attempts = 3
base_delay = 0.25
max_delay = 4
"""
    config = load_config(write(tmp_path, text))
    assert isinstance(config, BridgeConfig)
    assert config.database_url == "postgresql+psycopg://beat@db/beat"
    assert config.ssh is not None and config.ssh.port == 2222
    assert config.ssh.key_file == tmp_path / "keys" / "id"
    assert config.ssh.known_hosts == Path("/etc/ssh/known")
    assert config.ssh.allow_unknown_hosts is True and config.ssh.connect_timeout == 3.0
    assert config.runner_env() == {"SLURM_TIME_FORMAT": "standard", "SLURM_CONF": "/etc/slurm/slurm.conf"}
    assert (config.poll.min_interval, config.poll.max_interval) == (1.0, 10.5)
    assert (config.retry.attempts, config.retry.base_delay, config.retry.max_delay) == (3, 0.25, 4.0)
    assert (config.split_errors, config.cache_errors) == (2, 7)
    assert config.templates_dir == tmp_path / "tpl"


def test_queue_options(tmp_path: Path) -> None:
    (tmp_path / "gpu.sbatch.j2").write_text("#!/bin/bash\n#SBATCH -p {{ directives.partition | sbatchquote }}\n")
    queues = QUEUES + """
qos = "normal"
extra_directives = ["--constraint=intel", "--exclusive", "--account=lab1"]
template = "gpu.sbatch.j2"
environments = ["Python 3-1.2.0", { name = "R", version = "4.3" }]
"""
    queue = load_queues(write(tmp_path, MINIMAL, queues).parent / "queues.toml", (tmp_path,))["default"]
    assert (queue.account, queue.qos) == (None, "normal")  # an account may come as an extra directive
    assert queue.extra_directives == ("--constraint=intel", "--exclusive", "--account=lab1")
    assert queue.template == tmp_path / "gpu.sbatch.j2"
    assert queue.environments == (EnvironmentRef("Python 3", "1.2.0"), EnvironmentRef("R", "4.3"))


def test_queue_template_found_in_package_templates(tmp_path: Path) -> None:
    queue = load_queues(write(tmp_path, MINIMAL, QUEUES + 'template = "array.sbatch.j2"\n').parent / "queues.toml")
    assert queue["default"].template is not None
    assert queue["default"].template.name == "array.sbatch.j2"


@pytest.mark.parametrize(
    ("bridge", "expected"),
    [
        (MINIMAL + 'runner = "slurmrest"\n', ["bridge.toml", "runner", "'slurmrest'", "'local', 'ssh', 'pyslurm'"]),
        (MINIMAL + "cach_root = 1\n", ["unknown key cach_root", "valid keys:", "cache_root"]),
        ('spool_dir = "s"\n', ["required key cache_root is missing"]),
        (MINIMAL + '[retry]\nattempts = "3"\n', ["retry.attempts", "'3'", "an integer from 1 to 100"]),
        (MINIMAL + "[retry]\nattempts = true\n", ["retry.attempts", "True", "an integer"]),
        (MINIMAL + "[retry]\nbase_delay = 5\nmax_delay = 1\n", ["retry.max_delay", "retry.base_delay"]),
        (MINIMAL + "[poll]\nmin_interval = -1\n", ["poll.min_interval", "-1"]),
        (MINIMAL + "[poll]\nevery = 1\n", ["unknown key poll.every", "[poll]", "max_interval"]),
        (MINIMAL + 'runner = "ssh"\n', ["required key ssh is missing"]),
        (MINIMAL + '[ssh]\nport = 22\n', ["required key ssh.host is missing"]),
        (MINIMAL + '[ssh]\nhost = "h"\nport = 70000\n', ["ssh.port", "70000", "1 to 65535"]),
        (MINIMAL + '[ssh]\nhost = "h"\nallow_unknown_hosts = "yes"\n', ["ssh.allow_unknown_hosts", "true or false"]),
        (MINIMAL + 'split_errors = 0\n', ["split_errors = 0", "an integer from 1 to 1000"]),
        (MINIMAL + 'queues = "nope.toml"\n', ["nope.toml", "not found"]),
        (MINIMAL + 'templates_dir = "missing"\n', ["templates_dir", "an existing directory"]),
        (MINIMAL + '[slurm]\nenv = { "1BAD" = "x" }\n', ["slurm.env.1BAD", "environment variable name"]),
        (MINIMAL + "[database]\nurl = 5\n", ["database.url", "5", "string"]),
        ('cache_root = "a\nb"\n', ["not valid TOML"]),
        ('cache_root = "a\\nb"\nspool_dir = "s"\n', ["cache_root", "control characters"]),
        (MINIMAL + 'deployment = "Prod-1"\n',
         ["bridge.toml", "deployment = 'Prod-1'", "1 to 16 characters of a-z and 0-9"]),
        (MINIMAL + 'deployment = "abcdefghijklmnopq"\n', ["deployment", "1 to 16 characters"]),
        (MINIMAL + "deployment = 3\n", ["deployment = 3", "a-z and 0-9"]),
        (MINIMAL + "[reconcile]\nmisses = 0\n", ["reconcile.misses = 0", "an integer from 1 to 1000"]),
        (MINIMAL + "[reconcile]\ngrace = -1\n", ["reconcile.grace = -1", "a number from 0.0"]),
    ],
)
def test_bad_bridge_config(tmp_path: Path, bridge: str, expected: list[str]) -> None:
    message = error_of(tmp_path, bridge)
    assert str(tmp_path) in message
    for part in expected:
        assert part in message


def queue_error(tmp_path: Path, extra: str = "", replace: tuple[str, str] | None = None) -> str:
    queues = QUEUES + extra
    if replace:
        queues = queues.replace(*replace)
    message = error_of(tmp_path, MINIMAL, queues)
    assert str(tmp_path / "queues.toml") in message
    return message


@pytest.mark.parametrize(
    ("extra", "replace", "expected"),
    [
        ("", ("memory_limit = 1000", "memory_limit = 0"), ["queues.default.memory_limit = 0", "from 1 to"]),
        ("", ("memory_limit = 1000", 'memory_limit = "1G"'), ["queues.default.memory_limit", "'1G'"]),
        ("", ("time_limit = 30\n", ""), ["required key queues.default.time_limit is missing"]),
        ("memory = 5\n", None, ["unknown key queues.default.memory", "memory_limit"]),
        ("", ('partition = "cpu"', 'partition = "cpu; rm -rf /"'), ["queues.default.partition", "cpu; rm -rf /"]),
        ('extra_directives = ["--x=1\\n#SBATCH --y"]\n', None, ["queues.default.extra_directives[0]", "newlines"]),
        ('extra_directives = ["#SBATCH --nice=1"]\n', None, ["extra_directives[0]", "long sbatch option"]),
        ('extra_directives = "--nice=1"\n', None, ["queues.default.extra_directives", "a list"]),
        ('extra_directives = ["--partition=debug"]\n', None,
         ["queues.default.extra_directives", "conflicts", "the bridge sets:"]),
        ('qos = "q"\nextra_directives = ["--qos=other"]\n', None, ["extra_directives", "--qos", "conflicts"]),
        ('extra_directives = ["--nice=1", "--nice=2"]\n', None, ["extra_directives", "--nice", "conflicts"]),
        ('extra_directives = ["--mail-user=a b"]\n', None, ["extra_directives", "exactly one value"]),
        ('template = "nope.j2"\n', None, ["queues.default.template", "'nope.j2'", "inside the templates directories"]),
        ('environments = ["python"]\n', None, ["queues.default.environments[0]", "name-version"]),
        ('environments = [{ name = "R" }]\n', None, ["queues.default.environments[0].version is missing"]),
        ('environments = [{ name = "R", version = "4", x = 1 }]\n', None, ["unknown key", "environments[0].x"]),
        ("", ("[queues.default]", "[queues.'bad name']"), ["queues.bad name", "queue name"]),
        ("", ("[queues.default]", "[queue.default]"), ["unknown key queue", "valid keys: queues"]),
    ],
)
def test_bad_queues(tmp_path: Path, extra: str, replace: tuple[str, str] | None, expected: list[str]) -> None:
    message = queue_error(tmp_path, extra, replace)
    for part in expected:
        assert part in message


def test_empty_queues_file_is_an_error(tmp_path: Path) -> None:
    assert "required key queues is missing" in error_of(tmp_path, MINIMAL, "")
    assert "no queue defined" in error_of(tmp_path, MINIMAL, "[queues]\n")


def test_resolve_config_path(tmp_path: Path) -> None:
    assert resolve_config_path("x.toml", {"BEAT_BRIDGE_CONFIG": "env.toml"}) == Path("x.toml")
    assert resolve_config_path(None, {"BEAT_BRIDGE_CONFIG": "env.toml"}) == Path("env.toml")
    assert resolve_config_path(None, {}) == Path("config/bridge.toml")
    assert resolve_config_path(None, {"BEAT_BRIDGE_CONFIG": ""}) == Path("config/bridge.toml")
