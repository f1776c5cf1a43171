"""The fields of an experiment declaration, checked one by one: pure, no database.

Every check raises a DeclarationError naming the block and the field (a dotted
path for nested values) and saying what is valid. Names are bounded by their
database column and refused with control or invisible characters (they reach
terminals, logs and `#SBATCH` comments); integers by what the database stores
and by the bridge's [limits]; parameters must be plain JSON (finite numbers, no
TOML dates) of bounded size and nesting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bridge.config import Limits
from bridge.errors import BridgeError
from bridge.models import Block, Environment, Experiment, Queue
from bridge.values import INT32_MAX, integer_problem, json_problem, name_problem

ALGORITHM = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)
NAME_LENGTH = 200  # block, input, output, dataset and dependency names
EXPERIMENT_NAME = Experiment.__table__.c.name.type.length
AUTHOR = Experiment.__table__.c.author.type.length
BLOCK_NAME = Block.__table__.c.name.type.length
QUEUE_NAME = Queue.__table__.c.name.type.length
ENV_NAME = Environment.__table__.c.name.type.length
ENV_VERSION = Environment.__table__.c.version.type.length


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
    problem = name_problem(name, BLOCK_NAME)
    if problem:
        raise DeclarationError(f"block name {problem}")
    return name


def check_algorithm(block: str, value: Any) -> str:
    if not isinstance(value, str) or not ALGORITHM.fullmatch(value) or len(value) > 500:
        raise fail(block, "algorithm", "expected 'package.module:function' (ASCII, at most 500 characters)")
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
