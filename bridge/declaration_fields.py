"""The fields of an experiment declaration, checked one by one: pure, no database.

Every check raises a DeclarationError naming the block and the field (a dotted
path for nested values) and saying what is valid. Names are bounded by their
database column and refused with control or invisible characters (they reach
terminals, logs and `#SBATCH` comments); integers by what the database stores
and by the bridge's [limits]; parameters must be plain JSON (finite numbers, no
TOML dates) of bounded size and nesting.

The keys are declared once, in TOP_FIELDS and BLOCK_FIELDS (which are required,
their defaults, bounds and descriptions): the loader takes its key sets,
defaults and bounds from them, and bridge.schema_declaration writes the JSON
Schema of a declaration from the same tables.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bridge.config import Limits
from bridge.errors import BridgeError
from bridge.models import Block, Environment, Experiment, Queue
from bridge.toml_table import MISSING, Field
from bridge.values import INT32_MAX, integer_problem, json_problem, name_problem

_WORD = "[A-Za-z_][A-Za-z0-9_]*"  # spelt out (not \w): JSON Schema editors read \w as Unicode or ASCII
CALLABLE = rf"{_WORD}(\.{_WORD})*:{_WORD}"
BEAT_NAME = "[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*/[0-9]+"  # as bridge.beat_prefix.NAME
ALGORITHM = re.compile(f"{CALLABLE}|{BEAT_NAME}")
ALGORITHM_LENGTH = 500
NAME_LENGTH = 200  # block, input, output, dataset and dependency names
EXPERIMENT_NAME = Experiment.__table__.c.name.type.length
AUTHOR = Experiment.__table__.c.author.type.length
BLOCK_NAME = Block.__table__.c.name.type.length
QUEUE_NAME = Queue.__table__.c.name.type.length
ENV_NAME = Environment.__table__.c.name.type.length
ENV_VERSION = Environment.__table__.c.version.type.length

# Kinds beyond bridge.toml_table's: algorithm, json (a mapping of plain JSON values), environment ('name-version',
# a unique 'name', or {name, version}), slots (1 to the [limits] bound), inputs, outputs (non-empty, distinct
# names), names (a list of names), blocks. A text field here is a name: non-blank, no control characters.
BLOCK_FIELDS = (
    Field("algorithm", "algorithm", description="what a split runs: 'package.module:function', or a BEAT "
          "algorithm 'user/name/version' of bridge.toml's beat_prefix",
          pattern=ALGORITHM, max_length=ALGORITHM_LENGTH),
    Field("parameters", "json", {}, "passed to the algorithm: a mapping of plain JSON values"),
    Field("queue", "text", description="a queue of queues.toml (`beat-bridge queues sync`)", max_length=QUEUE_NAME),
    Field("environment", "environment", description="'name-version', a unique 'name', or {name, version}",
          max_length=ENV_NAME + ENV_VERSION + 1,
          fields=(Field("name", "text", max_length=ENV_NAME), Field("version", "text", max_length=ENV_VERSION))),
    Field("required_slots", "slots", 1, "splits of this block, at most bridge.toml [limits] max_required_slots "
          "and max_splits_per_slot x the queue's max_slots_per_user"),
    Field("inputs", "inputs", {}, "input name -> {dataset, size} (size data units), {block, output}, or for a "
          "BEAT algorithm {cache} (a BEAT cache file's hash)",
          max_length=NAME_LENGTH),
    Field("outputs", "outputs", description="the block's output names: at least one, distinct",
          max_length=NAME_LENGTH),
    Field("dependencies", "names", [], "blocks that must be done first, beyond those its inputs name",
          max_length=NAME_LENGTH),
)
TOP_FIELDS = (
    Field("name", "text", description="the experiment's name, unique per author", max_length=EXPERIMENT_NAME),
    Field("author", "text", description="the user it runs for (counts for the queues' max_slots_per_user)",
          max_length=AUTHOR),
    Field("blocks", "blocks", description="block name -> block (at least one, at most bridge.toml [limits] "
          "max_blocks)", max_length=BLOCK_NAME, fields=BLOCK_FIELDS),
)
TOP = {f.name: f for f in TOP_FIELDS}
BLOCK = {f.name: f for f in BLOCK_FIELDS}


def value(spec: Mapping[str, Any], name: str) -> Any:
    """A block's field: its value, else its default from BLOCK_FIELDS (None for a required one: its check refuses).

    A default {} or [] is copied: one declaration's must not be another's.
    """
    if name in spec:
        return spec[name]
    default = BLOCK[name].default
    return None if default is MISSING else type(default)(default) if isinstance(default, (dict, list)) else default


class DeclarationError(BridgeError):
    """The experiment declaration is invalid."""


def fail(block: str, key: str, message: str) -> DeclarationError:
    """The error for one field of one block."""
    return DeclarationError(f"block '{block}', field '{key}': {message}")


def check_name(block: str, key: str, value: Any, max_length: int = NAME_LENGTH) -> str:
    """A name-valued field (a reference to a block, output, dataset, queue...)."""
    problem = name_problem(value, max_length)
    if problem:
        raise fail(block, key, problem)
    return value


def check_top_name(key: str, value: Any, max_length: int) -> str:
    """The experiment's name or author."""
    problem = name_problem(value, max_length)
    if problem:
        raise DeclarationError(f"'{key}': {problem}")
    return value


def check_block_name(name: str) -> str:
    problem = name_problem(name, TOP["blocks"].max_length)
    if problem:
        raise DeclarationError(f"block name {problem}")
    return name


def check_algorithm(block: str, value: Any) -> str:
    if not isinstance(value, str) or not ALGORITHM.fullmatch(value) or len(value) > ALGORITHM_LENGTH:
        raise fail(block, "algorithm", "expected 'package.module:function' or a BEAT algorithm 'user/name/version' "
                   f"(ASCII, at most {ALGORITHM_LENGTH} characters)")
    return value


def check_parameters(block: str, value: Any, limits: Limits) -> Mapping[str, Any]:
    """Plain JSON: a mapping of finite numbers, strings, booleans, null, lists and mappings, bounded."""
    if not isinstance(value, Mapping):
        raise fail(block, "parameters", "must be a mapping of parameter name to a JSON value")
    found = json_problem(value, limits.max_parameters_depth)
    if found:
        where, problem = found
        raise fail(block, f"parameters.{where}" if where else "parameters", problem)
    size = len(json.dumps(value, sort_keys=True))
    if size > limits.max_parameters_bytes:
        raise fail(block, "parameters", f"{size} bytes of JSON: expected at most {limits.max_parameters_bytes} "
                   "(bridge.toml [limits] max_parameters_bytes)")
    return value


def slots_bound(queue: Queue, limits: Limits) -> tuple[int, str]:
    """The most splits a job on this queue may ask for, and why (for the error)."""
    per_queue = limits.max_splits_per_slot * queue.max_slots_per_user
    bound = min(limits.max_required_slots, per_queue)
    why = (f"queue '{queue.name}' runs {queue.max_slots_per_user} slots per user, at most "
           f"{limits.max_splits_per_slot} splits per slot; at most {limits.max_required_slots} in all "
           "(bridge.toml [limits])")
    return bound, why


def check_slots(block: str, value: Any, queue: Queue, limits: Limits) -> int:
    bound, why = slots_bound(queue, limits)
    problem = integer_problem(value, bound)
    if problem:
        raise fail(block, "required_slots", f"{problem} ({why})")
    return value


def check_outputs(block: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise fail(block, "outputs", "must be a non-empty list of distinct names")
    for output in value:
        check_name(block, "outputs", output)
    if len(set(value)) != len(value):
        raise fail(block, "outputs", "must be a non-empty list of distinct names")
    return value


def check_dataset(block: str, where: str, source: Mapping[str, Any], limits: Limits) -> None:
    check_name(block, f"{where}.dataset", source["dataset"])
    maximum = min(limits.max_dataset_size, INT32_MAX)
    problem = integer_problem(source["size"], maximum)
    if problem:
        raise fail(block, f"{where}.size", f"{problem} data units (bridge.toml [limits] max_dataset_size)")


def check_environment_ref(block: str, value: Any) -> tuple[str, str] | str:
    """('name', 'version') from a mapping, or the string form ('name-version' or a unique 'name')."""
    if isinstance(value, Mapping):
        if set(value) != {"name", "version"}:
            raise fail(block, "environment", "expected 'name-version' or {name, version} (exactly those keys)")
        return (check_name(block, "environment.name", value["name"], ENV_NAME),
                check_name(block, "environment.version", value["version"], ENV_VERSION))
    if isinstance(value, str):
        return check_name(block, "environment", value, ENV_NAME + ENV_VERSION + 1)
    raise fail(block, "environment", "expected 'name-version' or {name, version}")
