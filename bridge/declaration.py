"""Experiment declarations (JSON or TOML) turned into rows: the web server's side.

A declaration::

    {
      "name": "my-experiment",            # unique per author
      "author": "alice",                  # user name, counts for max_slots_per_user
      "blocks": {
        "numbers": {
          "algorithm": "pkg.module:function",   # required, "package.module:function"
          "parameters": {"scale": 2},           # optional, JSON values
          "queue": "cpu",                       # required, an existing queue name
          "environment": "python-3.11",         # "name-version", a unique "name",
                                                #  or {"name": ..., "version": ...}
          "required_slots": 2,                  # optional, default 1
          "inputs": {                           # optional, name -> source
            "in": {"dataset": "numbers", "size": 100},     # `size` data units
            "other": {"block": "upstream", "output": "out"} # another block's output
          },
          "outputs": ["out"],                   # required, at least one name
          "dependencies": ["upstream"]          # optional, beyond those implied by inputs
        }
      }
    }

Output hashes come from bridge.hashing (algorithm, parameters, environment,
input hashes, output name); a dataset input hashes its name and size. The
queue and environment must exist (see bridge.scheduling.upsert_queue); when a
queue lists environments, the block's must be one of them. The whole
declaration is validated before any row is added; a DeclarationError names the
block and the field. On success the experiment is committed, status P.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import declaration_beat as beat
from bridge import declaration_fields as fields
from bridge.beat_prefix import BeatAlgorithm
from bridge.config import Limits
from bridge.declaration_beat import BeatSite
from bridge.declaration_fields import DeclarationError, fail
from bridge.hashing import cache_path, dataset_hash, output_hash
from bridge.history import record
from bridge.models import Block, BlockStatus, CachedFile, Environment, Experiment, ExperimentStatus, Queue
from bridge.toml_table import parse_toml
from bridge.values import JsonError, load_json

__all__ = ["DeclarationError", "load_experiment", "load_experiment_file"]
TOP_KEYS = set(fields.TOP)
BLOCK_KEYS = set(fields.BLOCK)


@dataclass
class _Block:
    """One validated block, before it becomes a row."""

    name: str
    spec: Mapping[str, Any]
    queue: Queue
    environment: Environment
    upstream: set[str] = field(default_factory=set)
    hashes: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    beat: BeatAlgorithm | None = None  # a BEAT algorithm block (bridge.declaration_beat)


def load_experiment_file(session: Session, path: str | Path, limits: Limits | None = None,
                         site: BeatSite | None = None, shown: str | Path | None = None) -> Experiment:
    """Load a declaration from a .json or .toml file (see the module docstring); errors name it as `shown`."""
    path = Path(path)
    label = path if shown is None else shown
    if path.suffix not in (".json", ".toml"):
        raise DeclarationError(f"{label}: expected a .json or .toml file")
    try:
        data = path.read_bytes()
        declaration = load_json(data) if path.suffix == ".json" else parse_toml(data)
    except OSError as e:
        raise DeclarationError(f"{label}: {e.strerror or e}: {label}") from e
    except (JsonError, tomllib.TOMLDecodeError) as e:
        raise DeclarationError(f"{label}: {e}") from e
    try:
        return load_experiment(session, declaration, limits, site)
    except DeclarationError as e:
        raise DeclarationError(f"{label}: {e}") from e


def load_experiment(session: Session, declaration: Mapping[str, Any], limits: Limits | None = None,
                    site: BeatSite | None = None) -> Experiment:
    """Validate a declaration completely, then add the experiment and its blocks and commit.

    `site` is where BEAT algorithm blocks find their prefix and cache (bridge.declaration_beat).
    """
    limits, site = limits or Limits(), site or BeatSite()
    name, author, specs = _check_top(session, declaration, limits)
    blocks = {bname: _check_block(session, bname, spec, limits, site) for bname, spec in specs.items()}
    for block in blocks.values():
        _link_inputs(block, blocks, limits, site)
    order = _topological(blocks)
    for bname in order:
        _hash_outputs(blocks[bname], blocks)
    beat.write_datasets(blocks.values(), site)
    experiment = Experiment(name=name, author=author, status=ExperimentStatus.PENDING)
    session.add(experiment)
    rows = {bname: _block_row(session, experiment, blocks[bname], position)
            for position, bname in enumerate(order)}
    for bname, row in rows.items():
        row.dependencies = [rows[up] for up in sorted(blocks[bname].upstream)]
    session.flush()
    for row in (experiment, *rows.values()):
        record(session, row, None, row.status, source="load_experiment")
    session.commit()
    return experiment


def _check_top(session: Session, declaration: Any, limits: Limits) -> tuple[str, str, Mapping[str, Any]]:
    """Name, author and block specs of a declaration, checked (not the blocks themselves)."""
    if not isinstance(declaration, Mapping):
        raise DeclarationError("expected a mapping with name, author and blocks")
    unknown = set(declaration) - TOP_KEYS
    if unknown:
        raise DeclarationError(f"unknown key(s) {sorted(unknown)}; expected {sorted(TOP_KEYS)}")
    if "name" not in declaration or "author" not in declaration:
        raise DeclarationError(f"'{'name' if 'name' not in declaration else 'author'}' is missing: "
                               "a declaration has a name, an author and blocks")
    name = fields.check_top_name("name", declaration["name"], fields.TOP["name"].max_length)
    author = fields.check_top_name("author", declaration["author"], fields.TOP["author"].max_length)
    specs = declaration.get("blocks")
    if not isinstance(specs, Mapping) or not specs:
        raise DeclarationError("'blocks' must be a non-empty mapping of block name to block")
    if len(specs) > limits.max_blocks:
        raise DeclarationError(f"'blocks': {len(specs)} blocks, expected at most {limits.max_blocks} "
                               "(bridge.toml [limits] max_blocks)")
    for bname in specs:
        fields.check_block_name(bname)
    taken = select(Experiment.id).where(Experiment.author == author, Experiment.name == name)
    if session.scalar(taken) is not None:
        raise DeclarationError(f"experiment {author}/{name} already exists")
    return name, author, specs


def _check_block(session: Session, name: str, spec: Any, limits: Limits, site: BeatSite) -> _Block:
    """Check one block's own fields; its queue and environment must exist."""
    if not isinstance(spec, Mapping):
        raise DeclarationError(f"block '{name}': must be a mapping")
    unknown = set(spec) - BLOCK_KEYS
    if unknown:
        raise fail(name, sorted(unknown)[0], f"unknown field; expected {sorted(BLOCK_KEYS)}")
    fields.check_algorithm(name, fields.value(spec, "algorithm"))
    fields.check_parameters(name, fields.value(spec, "parameters"), limits)
    fields.check_outputs(name, fields.value(spec, "outputs"))
    queue = _queue(session, name, fields.value(spec, "queue"))
    fields.check_slots(name, fields.value(spec, "required_slots"), queue, limits)
    environment = _environment(session, name, fields.value(spec, "environment"))
    if queue.environments and environment not in queue.environments:
        offered = f"{environment.name} ({environment.version}) is not offered by queue {queue.name}"
        raise fail(name, "environment", offered)
    algorithm = beat.check_block(name, spec, site) if beat.is_beat_name(spec["algorithm"]) else None
    return _Block(name=name, spec=spec, queue=queue, environment=environment, beat=algorithm)


def _queue(session: Session, block: str, value: Any) -> Queue:
    """The queue a block names; the error lists the queues there are."""
    names = session.scalars(select(Queue.name).order_by(Queue.name)).all()
    valid = ", ".join(repr(n) for n in names) or "none (run `beat-bridge queues sync`)"
    if not isinstance(value, str) or value not in names:
        problem = fields.name_problem(value, fields.QUEUE_NAME) or f"unknown queue {value!r}"
        raise fail(block, "queue", f"{problem}; valid queues: {valid}")
    return session.scalar(select(Queue).where(Queue.name == value))


def _environment(session: Session, block: str, value: Any) -> Environment:
    """The environment named by a dict, 'name-version', or an unambiguous 'name'."""
    ref = fields.check_environment_ref(block, value)
    if isinstance(ref, tuple):
        found = session.scalars(select(Environment).where(
            Environment.name == ref[0], Environment.version == ref[1])).all()
    else:
        every = session.scalars(select(Environment)).all()
        found = [e for e in every if f"{e.name}-{e.version}" == ref] or [e for e in every if e.name == ref]
    if len(found) != 1:
        what = "ambiguous" if found else "unknown"
        raise fail(block, "environment", f"{what} environment {value!r}")
    return found[0]


def _link_inputs(block: _Block, blocks: Mapping[str, _Block], limits: Limits, site: BeatSite) -> None:
    """Check inputs and dependencies; record the upstream blocks of `block`."""
    inputs = fields.value(block.spec, "inputs")
    if not isinstance(inputs, Mapping):
        raise fail(block.name, "inputs", "must be a mapping of input name to source")
    for iname, source in inputs.items():
        problem = fields.name_problem(iname, fields.NAME_LENGTH)
        if problem:
            raise fail(block.name, "inputs", f"input name {problem}")
        where = f"inputs.{iname}"
        upstream = None
        if isinstance(source, Mapping) and set(source) == {"dataset", "size"}:
            fields.check_dataset(block.name, where, source, limits)
        elif isinstance(source, Mapping) and set(source) == {"cache"}:
            pass  # a BEAT cache file: checked by beat.check_input
        elif isinstance(source, Mapping) and set(source) == {"block", "output"}:
            upstream = blocks.get(fields.check_name(block.name, f"{where}.block", source["block"]))
            if upstream is None:
                raise fail(block.name, where, f"no block named {source['block']!r}")
            output = fields.check_name(block.name, f"{where}.output", source["output"])
            if output not in upstream.spec["outputs"]:
                raise fail(block.name, where, f"block {upstream.name!r} has no output {output!r}")
            block.upstream.add(upstream.name)
        else:
            raise fail(block.name, where, "expected {dataset, size}, {block, output} or (a BEAT block) {cache}")
        beat.check_input(block, iname, source, upstream, site)
    dependencies = fields.value(block.spec, "dependencies")
    if not isinstance(dependencies, list):
        raise fail(block.name, "dependencies", "must be a list of block names")
    for dependency in dependencies:
        if fields.check_name(block.name, "dependencies", dependency) not in blocks:
            raise fail(block.name, "dependencies", f"no block named {dependency!r}")
        block.upstream.add(dependency)


def _topological(blocks: Mapping[str, _Block]) -> list[str]:
    """Block names, each after its upstream blocks (ties by name); DeclarationError on a cycle."""
    remaining = {name: set(b.upstream) for name, b in blocks.items()}
    order: list[str] = []
    while remaining:
        ready = sorted(name for name, ups in remaining.items() if not ups)
        if not ready:
            cycle = sorted(remaining)
            raise fail(cycle[0], "dependencies", f"dependency cycle among blocks {cycle}")
        for name in ready:
            order.append(name)
            del remaining[name]
        for ups in remaining.values():
            ups.difference_update(ready)
    return order


def _hash_outputs(block: _Block, blocks: Mapping[str, _Block]) -> None:
    """Compute the input and output hashes of `block` (its upstream blocks already done)."""
    for iname, source in fields.value(block.spec, "inputs").items():
        if "dataset" in source and block.beat is not None:
            hash_ = beat.dataset_hash(source["dataset"], source["size"], block.beat.inputs[iname].dataformat)
            block.inputs[iname] = {"dataset": source["dataset"], "size": source["size"]}
        elif "dataset" in source:
            hash_ = dataset_hash(source["dataset"], source["size"])
            block.inputs[iname] = {"dataset": source["dataset"], "size": source["size"]}
        elif "cache" in source:
            hash_ = source["cache"]
            block.inputs[iname] = {"cache": hash_}
        else:
            hash_ = blocks[source["block"]].hashes[source["output"]]
            block.inputs[iname] = {"block": source["block"], "output": source["output"]}
        block.inputs[iname].update(hash=hash_, path=cache_path(hash_))
    env = (block.environment.name, block.environment.version)
    input_hashes = {iname: entry["hash"] for iname, entry in block.inputs.items()}
    algorithm, parameters = block.spec["algorithm"], fields.value(block.spec, "parameters")
    if block.beat is not None:
        algorithm, parameters = beat.hashing_key(block.beat), block.beat.parameters(parameters)
    for oname in block.spec["outputs"]:
        block.hashes[oname] = output_hash(algorithm, parameters, env, input_hashes, oname)


def _block_row(session: Session, experiment: Experiment, block: _Block, position: int) -> Block:
    """The Block row of a validated block, with its (shared) cached files."""
    command = {
        "experiment": experiment.name, "author": experiment.author, "block": block.name,
        "algorithm": block.spec["algorithm"], "parameters": fields.value(block.spec, "parameters"),
        "queue": block.queue.name, "partition": block.queue.partition,
        "environment": {"name": block.environment.name, "version": block.environment.version},
        "nb_slots": fields.value(block.spec, "required_slots"),
        "inputs": block.inputs,
        "outputs": {o: {"hash": h, "path": cache_path(h)} for o, h in block.hashes.items()},
    }
    if block.beat is not None:
        command.update(beat.command(block.beat, command["parameters"], block.inputs, block.hashes))
    outputs = []
    for hash_ in sorted(block.hashes.values()):
        cached = session.scalar(select(CachedFile).where(CachedFile.hash == hash_))
        outputs.append(cached or CachedFile(hash=hash_))
    row = Block(
        experiment=experiment, name=block.name, command=json.dumps(command, sort_keys=True),
        queue=block.queue, environment=block.environment, outputs=outputs,
        required_slots=fields.value(block.spec, "required_slots"), execution_order=position,
        status=BlockStatus.PENDING,
    )
    session.add(row)
    return row
