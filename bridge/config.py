"""Configuration: bridge.toml and the queues.toml it names, loaded once into frozen dataclasses.

Admins edit these files, so every error names the file, the dotted key, the bad
value and what would have been accepted; unknown keys are errors (a typo must not
silently fall back to a default). Relative paths are relative to the file that
holds them, never to the current directory.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError, ConfigError
from bridge.render import BRIDGE_OPTIONS, extra_options, package_templates_dir

log = logging.getLogger(__name__)

ENV_VAR = "BEAT_BRIDGE_CONFIG"
DEFAULT_PATH = Path("config/bridge.toml")
RUNNERS = ("local", "ssh", "pyslurm")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING = object()


@dataclass(frozen=True)
class SshConfig:
    """How the SSH runner reaches the cluster's login node."""

    host: str
    port: int = 22
    user: str | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    allow_unknown_hosts: bool = False
    connect_timeout: float = 10.0


@dataclass(frozen=True)
class PollConfig:
    """Bounds of the poller's adaptive interval, in seconds."""

    min_interval: float = 1.0
    max_interval: float = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter for transient Slurm errors."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0


@dataclass(frozen=True)
class EnvironmentRef:
    """An execution environment a queue accepts (BEAT's name + version)."""

    name: str
    version: str


@dataclass(frozen=True)
class QueueConfig:
    """One BEAT queue and the Slurm partition and limits it maps to."""

    name: str
    partition: str
    memory_limit: int
    time_limit: int
    cores_per_slot: int
    max_slots_per_user: int
    account: str | None = None
    qos: str | None = None
    extra_directives: tuple[str, ...] = ()
    template: Path | None = None
    environments: tuple[EnvironmentRef, ...] = ()


@dataclass(frozen=True)
class BridgeConfig:
    """Everything the bridge reads from its configuration files."""

    path: Path
    database_url: str
    cache_root: Path
    spool_dir: Path
    runner: str
    queues_file: Path
    queues: Mapping[str, QueueConfig]
    ssh: SshConfig | None = None
    poll: PollConfig = field(default_factory=PollConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    split_errors: int = 3
    cache_errors: int = 5
    templates_dir: Path | None = None
    slurm_conf: Path | None = None
    slurm_env: Mapping[str, str] = field(default_factory=dict)

    def runner_env(self) -> dict[str, str]:
        """Environment for Slurm commands: SLURM_CONF (if set) plus [slurm].env."""
        env = dict(self.slurm_env)
        if self.slurm_conf is not None:
            env.setdefault("SLURM_CONF", str(self.slurm_conf))
        return env


def resolve_config_path(arg: str | Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """The config file to use: the explicit argument, else $BEAT_BRIDGE_CONFIG, else config/bridge.toml."""
    environ = os.environ if environ is None else environ
    if arg:
        return Path(arg)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    return DEFAULT_PATH


class _Table:
    """One TOML table being read: typed getters that know the file and dotted key for errors."""

    def __init__(self, file: Path, prefix: str, data: Mapping[str, Any]) -> None:
        self.file, self.prefix, self.data, self.seen = file, prefix, data, set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.key(name)} = {value!r} is invalid: expected {expected}")

    def raw(self, name: str, default: Any) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise ConfigError(f"{self.file}: required key {self.key(name)} is missing")
            return default
        return self.data[name]

    def _get(self, name: str, default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self.raw(name, default)
        if default is not _MISSING and value is default:
            return value
        if not ok(value):
            raise self.fail(name, value, expected)
        return value

    def text(self, name: str, default: Any = _MISSING, pattern: re.Pattern | None = None) -> Any:
        value = self._get(name, default, _is_text, "a non-empty string without control characters")
        if value is not default and pattern is not None and not pattern.match(value):
            raise self.fail(name, value, f"a name matching {pattern.pattern}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        expected = "one of " + ", ".join(repr(c) for c in choices)
        return self._get(name, default, lambda v: v in choices, expected)

    def integer(self, name: str, default: Any = _MISSING, minimum: int = 1) -> Any:
        ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum  # noqa: E731
        return self._get(name, default, ok, f"an integer >= {minimum}")

    def number(self, name: str, default: Any = _MISSING, minimum: float = 0.0) -> float:
        ok = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= minimum  # noqa: E731
        return float(self._get(name, default, ok, f"a number >= {minimum}"))

    def flag(self, name: str, default: Any = _MISSING) -> bool:
        return self._get(name, default, lambda v: isinstance(v, bool), "true or false")

    def path(self, name: str, default: Any = _MISSING) -> Any:
        value = self.text(name, default)
        if value is default and default is not _MISSING:
            return value
        return _resolve(self.file.parent, value)

    def items(self, name: str) -> list[Any]:
        value = self.raw(name, [])
        if not isinstance(value, list):
            raise self.fail(name, value, "a list")
        return value

    def table(self, name: str, required: bool = False) -> _Table | None:
        value = self.raw(name, _MISSING if required else None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(name, value, "a table")
        return _Table(self.file, self.key(name), value)

    def done(self) -> None:
        """Reject every key that no getter asked for."""
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            valid = ", ".join(sorted(self.seen)) or "none"
            where = f"[{self.prefix}]" if self.prefix else "the top level"
            raise ConfigError(
                f"{self.file}: unknown key {self.key(unknown[0])!s} in {where} (valid keys: {valid})"
            )


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and not _has_control(value)


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: configuration file not found") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read configuration file: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def load_config(path: str | Path) -> BridgeConfig:
    """Load bridge.toml and the queues.toml it names; raise ConfigError naming file, key and value."""
    path = Path(path).absolute()
    top = _Table(path, "", _read_toml(path))
    base = path.parent
    database_url = _database_url(top.table("database"), base)
    templates_dir = top.path("templates_dir", None)
    if templates_dir is not None and not templates_dir.is_dir():
        raise top.fail("templates_dir", str(templates_dir), "an existing directory")
    runner = top.choice("runner", RUNNERS, "local")
    ssh = _ssh(top.table("ssh", required=runner == "ssh"))
    slurm_conf, slurm_env = _slurm(top.table("slurm"))
    queues_file = top.path("queues", base / "queues.toml")
    config = BridgeConfig(
        path=path,
        database_url=database_url,
        cache_root=top.path("cache_root"),
        spool_dir=top.path("spool_dir"),
        runner=runner,
        queues_file=queues_file,
        queues=load_queues(queues_file, (templates_dir,) if templates_dir else ()),
        ssh=ssh,
        poll=_poll(top.table("poll")),
        retry=_retry(top.table("retry")),
        split_errors=top.integer("split_errors", 3),
        cache_errors=top.integer("cache_errors", 5),
        templates_dir=templates_dir,
        slurm_conf=slurm_conf,
        slurm_env=slurm_env,
    )
    top.done()
    log.debug("loaded configuration %s (%d queues)", path, len(config.queues))
    return config


def _database_url(t: _Table | None, base: Path) -> str:
    """The database URL; a relative SQLite file path is made relative to the config file."""
    if t is None:
        return f"sqlite:///{base / 'bridge.sqlite'}"
    url = t.text("url", f"sqlite:///{base / 'bridge.sqlite'}")
    t.done()
    prefix = "sqlite:///"
    rest = url[len(prefix):] if url.startswith(prefix) else None
    if rest and not rest.startswith("/") and not rest.startswith(":memory:"):
        url = prefix + str((base / rest).resolve())
    return url


def _ssh(t: _Table | None) -> SshConfig | None:
    if t is None:
        return None
    ssh = SshConfig(
        host=t.text("host"),
        port=t.integer("port", 22),
        user=t.text("user", None),
        key_file=t.path("key_file", None),
        known_hosts=t.path("known_hosts", None),
        allow_unknown_hosts=t.flag("allow_unknown_hosts", False),
        connect_timeout=t.number("connect_timeout", 10.0, minimum=0.1),
    )
    if ssh.port > 65535:
        raise t.fail("port", ssh.port, "an integer from 1 to 65535")
    t.done()
    return ssh


def _slurm(t: _Table | None) -> tuple[Path | None, dict[str, str]]:
    if t is None:
        return None, {}
    conf = t.path("conf", None)
    env_table = t.table("env")
    env: dict[str, str] = {}
    if env_table is not None:
        for name in env_table.data:
            if not _ENV_NAME.match(name):
                raise env_table.fail(name, name, "an environment variable name")
            env[name] = env_table.text(name)
        env_table.done()
    t.done()
    return conf, env


def _poll(t: _Table | None) -> PollConfig:
    if t is None:
        return PollConfig()
    poll = PollConfig(t.number("min_interval", 1.0, 0.1), t.number("max_interval", 10.0, 0.1))
    if poll.max_interval < poll.min_interval:
        raise t.fail("max_interval", poll.max_interval, f"a number >= poll.min_interval ({poll.min_interval})")
    t.done()
    return poll


def _retry(t: _Table | None) -> RetryPolicy:
    if t is None:
        return RetryPolicy()
    retry = RetryPolicy(t.integer("attempts", 5), t.number("base_delay", 1.0), t.number("max_delay", 30.0))
    if retry.max_delay < retry.base_delay:
        raise t.fail("max_delay", retry.max_delay, f"a number >= retry.base_delay ({retry.base_delay})")
    t.done()
    return retry


def load_queues(path: str | Path, templates_dirs: tuple[Path, ...] = ()) -> dict[str, QueueConfig]:
    """Load queues.toml: `[queues.<name>]` tables, each mapping a BEAT queue onto a partition."""
    path = Path(path).absolute()
    top = _Table(path, "", _read_toml(path))
    top.seen.add("queues")
    top.done()  # a misspelt [queue.x] is named as unknown, not as "queues missing"
    queues_table = top.table("queues", required=True)
    assert queues_table is not None
    queues = {}
    for name in queues_table.data:
        if not _NAME.match(name):
            raise queues_table.fail(name, name, f"a queue name matching {_NAME.pattern}")
        t = queues_table.table(name, required=True)
        assert t is not None
        queues[name] = _queue(name, t, templates_dirs)
    queues_table.done()
    if not queues:
        raise ConfigError(f"{path}: no queue defined (add a [queues.<name>] table)")
    return queues


def _queue(name: str, t: _Table, templates_dirs: tuple[Path, ...]) -> QueueConfig:
    queue = QueueConfig(
        name=name,
        partition=t.text("partition", pattern=_NAME),
        memory_limit=t.integer("memory_limit"),
        time_limit=t.integer("time_limit"),
        cores_per_slot=t.integer("cores_per_slot"),
        max_slots_per_user=t.integer("max_slots_per_user"),
        account=t.text("account", None, pattern=_NAME),
        qos=t.text("qos", None, pattern=_NAME),
        extra_directives=tuple(_directive(t, i, v) for i, v in enumerate(t.items("extra_directives"))),
        template=_template(t, templates_dirs),
        environments=tuple(_environment(t, i, v) for i, v in enumerate(t.items("environments"))),
    )
    t.done()
    taken = BRIDGE_OPTIONS | {o for o, v in (("account", queue.account), ("qos", queue.qos)) if v}
    try:
        extra_options(queue.extra_directives, taken)
    except BridgeError as e:
        raise ConfigError(f"{t.file}: {t.key('extra_directives')}: {e} (the bridge sets: {', '.join(sorted(taken))})") from e
    return queue


def _directive(t: _Table, i: int, value: Any) -> str:
    """An admin's extra `#SBATCH` line: one long option, never a second line."""
    if not isinstance(value, str) or _has_control(value):
        raise t.fail(f"extra_directives[{i}]", value, "a string without newlines or control characters")
    if not re.match(r"^--[A-Za-z][A-Za-z0-9-]*(=.+)?$", value.strip()):
        raise t.fail(f"extra_directives[{i}]", value, "a long sbatch option like '--constraint=intel' (no '#SBATCH')")
    return value.strip()


def _template(t: _Table, templates_dirs: tuple[Path, ...]) -> Path | None:
    """A per-queue template: found in the admin templates dirs, then next to queues.toml."""
    name = t.text("template", None)
    if name is None:
        return None
    candidates = [d / name for d in templates_dirs] + [t.file.parent / name, package_templates_dir() / name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    where = ", ".join(str(c.parent) for c in candidates)
    raise t.fail("template", name, f"a template file that exists in one of: {where}")


def _environment(t: _Table, i: int, value: Any) -> EnvironmentRef:
    key = f"environments[{i}]"
    if isinstance(value, str):
        name, sep, version = value.rpartition("-")
        if sep and name.strip() and version.strip() and not _has_control(value):
            return EnvironmentRef(name, version)
    elif isinstance(value, dict):
        sub = _Table(t.file, f"{t.key(key)}", value)
        env = EnvironmentRef(sub.text("name"), sub.text("version"))
        sub.done()
        return env
    raise t.fail(key, value, "'name-version' or a table {name = ..., version = ...}")
