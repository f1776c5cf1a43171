"""queues.toml: each BEAT queue and the Slurm partition and limits it maps to.

Loaded once into frozen dataclasses (see bridge.config); errors name the file,
the key, the bad value and what would have been accepted. The keys are declared
once, in QUEUES_FIELD, which bridge.schema also turns into queues.toml's JSON Schema.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bridge.errors import BridgeError, ConfigError
from bridge.failure_policy import FAILURE_FIELDS, FailurePolicy, check_targets, failure_policy
from bridge.models import Environment, Queue
from bridge.render import ArraySpec, render_array_script
from bridge.sbatch_options import BRIDGE_OPTIONS, directive_problem, extra_options
from bridge.template_paths import package_templates_dir
from bridge.toml_table import Field, Table, read_fields, read_toml
from bridge.values import has_control

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_DIRECTIVE = re.compile(r"^\s*--[A-Za-z][A-Za-z0-9-]*(=.*\S)?\s*$")  # surrounding blanks are stripped
_LENGTH = {"queue": Queue.__table__.c.name.type.length, "partition": Queue.__table__.c.partition.type.length,
           "env_name": Environment.__table__.c.name.type.length,
           "env_version": Environment.__table__.c.version.type.length}
ENVIRONMENT_FIELDS = (
    Field("name", "text", description="the environment's name, as BEAT knows it", max_length=_LENGTH["env_name"]),
    Field("version", "text", description="its version", max_length=_LENGTH["env_version"]),
)
# kind "directive": text matching the pattern that sets no option the bridge sets (bridge.sbatch_options.clash);
# bridge.schema writes both into the schema.
DIRECTIVE = Field("", "directive", pattern=_DIRECTIVE, expected="a long sbatch option like '--constraint=intel' "
                  "(no '#SBATCH')")
# Queue keys the bridge passes as the sbatch option of the same name when the queue sets them: an extra
# directive may not set that option then (the loader below, and bridge.schema's if/then on these keys).
SETS_OPTION = ("account", "qos")
QUEUE_FIELDS = (
    Field("partition", "text", description="the Slurm partition its splits run on (sbatch --partition)",
          pattern=_NAME, max_length=_LENGTH["partition"]),
    Field("memory_limit", "integer", description="MB per split (sbatch --mem)"),
    Field("time_limit", "integer", description="minutes per split (sbatch --time)"),
    Field("cores_per_slot", "integer", description="CPUs per split (sbatch --cpus-per-task)"),
    Field("max_slots_per_user", "integer", description="splits of one job running at once (the array's %N)"),
    Field("account", "text", None, "Slurm account charged (sbatch --account)", pattern=_NAME),
    Field("qos", "text", None, "Slurm QOS (sbatch --qos)", pattern=_NAME),
    Field("extra_directives", "list", [], "more #SBATCH options, each one long option that the bridge does "
          "not set itself", item=DIRECTIVE),
    Field("template", "text", None, "a per-queue sbatch template: a file name inside bridge.toml's templates_dir "
          "or the shipped templates"),
    Field("environments", "list", [], "the execution environments this queue accepts ('name-version' or "
          "{name, version}); none listed: any", item=Field("", "name-version", fields=ENVIRONMENT_FIELDS)),
    *FAILURE_FIELDS,
)
QUEUES_FIELD = Field(
    "queues", "map", description="BEAT queues by name, each mapped onto a Slurm partition", minimum=1,
    key_pattern=_NAME, max_length=_LENGTH["queue"], item=Field("", "table", fields=QUEUE_FIELDS),
    expected=f"a queue name matching {_NAME.pattern}, at most {_LENGTH['queue']} characters")


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
    failures: FailurePolicy = FailurePolicy()  # on_node_fail, on_out_of_memory, on_timeout (bridge.failure_policy)


def load_queues(path: str | Path, templates_dirs: tuple[Path, ...] = (),
                errors: dict[str, ConfigError] | None = None) -> dict[str, QueueConfig]:
    """Load queues.toml: `[queues.<name>]` tables, each mapping a BEAT queue onto a partition.

    With `errors`, a queue that fails is left out and its error put there (`queues check` names them all).
    """
    path = Path(path).absolute()
    top = Table(path, "", read_toml(path))
    top.seen.add("queues")
    top.done()  # a misspelt [queue.x] is named as unknown, not as "queues missing"
    queues_table = top.table("queues", required=True)
    assert queues_table is not None
    queues = {}
    for name in queues_table.data:
        if not _NAME.fullmatch(name) or len(name) > _LENGTH["queue"]:
            raise queues_table.fail(name, name, QUEUES_FIELD.expected)
        t = queues_table.table(name, required=True)
        assert t is not None
        try:
            queues[name] = _queue(name, t, templates_dirs)
        except ConfigError as e:
            if errors is None:
                raise
            errors[name] = e
    queues_table.done()
    for name, error in check_targets(path, {n: q.failures for n, q in queues.items()}, set(queues_table.data)).items():
        if errors is None:
            raise error
        errors[name] = error
        del queues[name]
    if len(queues) < (QUEUES_FIELD.minimum or 0) and not errors:  # refused queues are in errors
        raise ConfigError(f"{path}: no queue defined (add a [queues.<name>] table)")
    return queues


def _queue(name: str, t: Table, templates_dirs: tuple[Path, ...]) -> QueueConfig:
    v = read_fields(t, QUEUE_FIELDS)
    queue = QueueConfig(
        name=name, partition=v["partition"], memory_limit=v["memory_limit"], time_limit=v["time_limit"],
        cores_per_slot=v["cores_per_slot"], max_slots_per_user=v["max_slots_per_user"], account=v["account"],
        qos=v["qos"], extra_directives=tuple(_directive(t, i, d) for i, d in enumerate(v["extra_directives"])),
        template=_template(t, v["template"], templates_dirs),
        environments=tuple(_environment(t, i, e) for i, e in enumerate(v["environments"])),
        failures=failure_policy(v),
    )
    taken = BRIDGE_OPTIONS | {key for key in SETS_OPTION if v[key] is not None}
    try:
        extra_options(queue.extra_directives, taken)
    except BridgeError as e:
        raise ConfigError(f"{t.file}: {t.key('extra_directives')}: {e} "
                          f"(the bridge sets: {', '.join(sorted(taken))})") from e
    _check_template(t, queue, templates_dirs)
    return queue


def sample_spec(queue: QueueConfig) -> ArraySpec:
    """An array of two splits on this queue, as the submitter would build it: renders every template at load."""
    spool = "/spool/bb-sample"
    return ArraySpec(
        job_name="bb-sample", submission_tag="bb-sample", partition=queue.partition,
        cpus_per_task=queue.cores_per_slot, mem_mb=queue.memory_limit, time_minutes=queue.time_limit,
        array_indices=(0, 1), throttle=queue.max_slots_per_user, output=f"{spool}/slurm-%A_%a.out",
        error=f"{spool}/slurm-%A_%a.err", python=sys.executable, element_runner="bridge.sbatch_scripts.element",
        spool_dir=spool, comment="beat experiment=it's \"sample\" $(id) block=b job=1", account=queue.account,
        qos=queue.qos, extra_directives=queue.extra_directives,
    )


def _check_template(t: Table, queue: QueueConfig, templates_dirs: tuple[Path, ...]) -> None:
    """Render the queue's template (or the default one) with a sample split: errors surface now, not at sbatch."""
    try:
        render_array_script(sample_spec(queue), template=queue.template, search_path=templates_dirs)
    except BridgeError as e:
        raise ConfigError(f"{t.file}: {t.key('template')}: {e}") from e


def _directive(t: Table, i: int, value: Any) -> str:
    """An admin's extra `#SBATCH` line: one long option, never a second line."""
    if not isinstance(value, str) or has_control(value):
        raise t.fail(f"extra_directives[{i}]", value, "a string without newlines or control characters")
    if not _DIRECTIVE.match(value):
        hint = directive_problem(value)  # `-t 10`: the clash rule names what the short form sets
        raise t.fail(f"extra_directives[{i}]", value, DIRECTIVE.expected + (f"; {hint}" if hint else ""))
    return value.strip()


def _template(t: Table, name: str | None, templates_dirs: tuple[Path, ...]) -> Path | None:
    """A per-queue template: a file name inside the templates directories (bridge.toml's templates_dir, the shipped).

    Confined: no absolute path, no '..', and a symbolic link must not lead out of its directory.
    """
    if name is None:
        return None
    dirs = [*templates_dirs, package_templates_dir()]
    expected = f"a template file inside the templates directories: {', '.join(map(str, dirs))}"
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise t.fail("template", name, expected)
    for directory in dirs:
        candidate = (directory / name).resolve()
        if candidate.is_file() and candidate.is_relative_to(directory.resolve()):
            return candidate
    raise t.fail("template", name, expected)


def _environment(t: Table, i: int, value: Any) -> EnvironmentRef:
    key = f"environments[{i}]"
    if isinstance(value, str):
        name, sep, version = value.rpartition("-")
        if len(name) > _LENGTH["env_name"] or len(version) > _LENGTH["env_version"]:
            raise t.fail(key, value, f"a name of at most {_LENGTH['env_name']} characters and a version of "
                         f"at most {_LENGTH['env_version']} characters")
        if sep and name.strip() and version.strip() and not has_control(value):
            return EnvironmentRef(name, version)
    elif isinstance(value, dict):
        return EnvironmentRef(**read_fields(Table(t.file, f"{t.key(key)}", value), ENVIRONMENT_FIELDS))
    raise t.fail(key, value, "'name-version' or a table {name = ..., version = ...}")
