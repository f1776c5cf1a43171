"""Declaration blocks that name a BEAT algorithm: typed by the prefix's declaration, checked before any row.

A block whose ``algorithm`` is a BEAT name (``user/name/version``, no colon)
runs that algorithm of bridge.toml's ``beat_prefix`` (bridge.beat_prefix). At
``experiments add``:

- the algorithm must be in the prefix (and a prefix configured); its input
  names must be the block's inputs, its output names the block's outputs, and
  the block's parameters names the algorithm declares (its defaults fill the
  rest, as BEAT's setup receives them);
- each input reads what its dataformat says: another BEAT block's output of
  the same dataformat, an existing BEAT cache file (``{"cache": HASH}``, as a
  BEAT database view leaves it under the cache root) whose header names that
  dataformat, or a generated dataset (``{"dataset", "size"}``) that the bridge
  writes in BEAT's format with that dataformat (bridge.beat_datasets);
- a callable block cannot read a BEAT block's output, nor a BEAT block a callable's
  (their files differ: JSON lines vs BEAT's packed records).

The block's command is then BEAT's configuration (algorithm, channel,
parameters, inputs and outputs with path, channel and hash) plus ``kind:
"beat"`` and the prefix: what the element hands beat.backend.python's executor.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.beat_datasets import DatasetWriteError, write_dataset
from bridge.beat_prefix import MAIN_CHANNEL, BeatAlgorithm, BeatPrefixError, cache_dataformat, load_algorithm
from bridge.declaration_fields import fail
from bridge.hashing import cache_path, sha256_json

HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BeatSite:
    """Where BEAT blocks find their algorithms (bridge.toml beat_prefix) and cached inputs (cache_root)."""

    prefix: Path | None = None
    cache_root: Path | None = None


def is_beat_name(algorithm: Any) -> bool:
    """A BEAT algorithm name rather than 'package.module:function' (the field's pattern checks the rest)."""
    return isinstance(algorithm, str) and ":" not in algorithm


def check_block(name: str, spec: Mapping[str, Any], site: BeatSite) -> BeatAlgorithm:
    """The block's BEAT algorithm; its inputs, outputs and parameters checked against its declaration."""
    try:
        algorithm = load_algorithm(site.prefix, spec["algorithm"])
    except BeatPrefixError as e:
        raise fail(name, "algorithm", str(e)) from e
    declared = list(spec.get("outputs") or [])
    if sorted(declared) != sorted(algorithm.outputs):
        raise fail(name, "outputs", f"{algorithm.name} has outputs {sorted(algorithm.outputs)}, "
                   f"the block declares {sorted(declared)}")
    inputs = spec.get("inputs") or {}
    if isinstance(inputs, Mapping) and sorted(inputs) != sorted(algorithm.inputs):
        raise fail(name, "inputs", f"{algorithm.name} has inputs {sorted(algorithm.inputs)}, "
                   f"the block gives {sorted(inputs)}")
    unknown = sorted(set(spec.get("parameters") or {}) - set(algorithm.defaults))
    if unknown:
        raise fail(name, f"parameters.{unknown[0]}", f"not a parameter of {algorithm.name} "
                   f"(its parameters: {sorted(algorithm.defaults) or 'none'})")
    return algorithm


def check_input(block: Any, iname: str, source: Mapping[str, Any], upstream: Any, site: BeatSite) -> None:
    """One input's source against the types on both ends (`upstream` is the source block, or None)."""
    where = f"inputs.{iname}"
    if upstream is not None and (upstream.beat is None) != (block.beat is None):
        reader = "a callable" if block.beat is None else "a BEAT"
        writer = "a BEAT" if upstream.beat is not None else "a callable"
        raise fail(block.name, where, f"{reader} block cannot read block {upstream.name!r}: it is {writer} block "
                   "(BEAT blocks write BEAT's cache format, callables JSON lines)")
    if block.beat is None:
        if "cache" in source:
            raise fail(block.name, where, "{cache} inputs (BEAT cache files) are for BEAT algorithm blocks")
        return
    expected = block.beat.inputs[iname].dataformat
    if upstream is not None:
        found = upstream.beat.outputs[source["output"]].dataformat
        what = f"block {upstream.name!r} output {source['output']!r}"
    elif "cache" in source:
        found, what = _cache_dataformat(block.name, where, source["cache"], site), f"cache file {source['cache']}"
    else:
        return  # a dataset is written with the input's dataformat
    if found != expected:
        raise fail(block.name, where, f"dataformat mismatch: {block.beat.name} reads {expected}, "
                   f"{what} is {found}")


def _cache_dataformat(block: str, where: str, hash_: Any, site: BeatSite) -> str:
    if not isinstance(hash_, str) or not HASH.fullmatch(hash_):
        raise fail(block, f"{where}.cache", "expected the 64 lower-case hex digits of a BEAT cache file's hash")
    if site.cache_root is None:
        raise fail(block, f"{where}.cache", "no cache root to find BEAT cache files in (bridge.toml cache_root)")
    try:
        return cache_dataformat(site.cache_root, cache_path(hash_))
    except BeatPrefixError as e:
        raise fail(block, f"{where}.cache", str(e)) from e


def dataset_hash(name: str, size: int, dataformat: str) -> str:
    """A generated dataset written in BEAT's format: its own hash (other bytes than the JSON-lines one)."""
    return sha256_json({"dataset": name, "size": size, "dataformat": dataformat})


def hashing_key(algorithm: BeatAlgorithm) -> str:
    """What stands for the algorithm in its outputs' hashes: its name and the hash of its code."""
    return f"beat:{algorithm.name}@{algorithm.code_hash}"


def command(algorithm: BeatAlgorithm, parameters: Mapping[str, Any], inputs: Mapping[str, dict[str, Any]],
            outputs: Mapping[str, str]) -> dict[str, Any]:
    """BEAT's configuration keys of a block's command (the rest is the bridge's: names, queue, slots...)."""
    return {
        "kind": "beat", "algorithm": algorithm.name, "prefix": str(algorithm.prefix), "channel": MAIN_CHANNEL,
        "parameters": algorithm.parameters(dict(parameters)),
        "inputs": {name: {**entry, "channel": algorithm.inputs[name].channel} for name, entry in inputs.items()},
        "outputs": {name: {"hash": hash_, "path": cache_path(hash_), "channel": algorithm.outputs[name].channel}
                    for name, hash_ in outputs.items()},
    }


def needs_dataset(block: Any, iname: str) -> tuple[str, int, str] | None:
    """(dataset, size, dataformat) of a BEAT block's dataset input, to be written before the experiment is added."""
    entry = block.inputs.get(iname, {})
    if block.beat is None or "dataset" not in entry:
        return None
    return entry["dataset"], entry["size"], block.beat.inputs[iname].dataformat


def write_datasets(blocks: Iterable[Any], site: BeatSite) -> None:
    """The dataset inputs of BEAT blocks, written in BEAT's format (after every check: nothing else is written)."""
    for block in blocks:
        for iname, entry in block.inputs.items():
            wanted = needs_dataset(block, iname)
            if wanted is None:
                continue
            if site.cache_root is None:
                raise fail(block.name, f"inputs.{iname}", "no cache root to write the dataset in (cache_root)")
            try:
                write_dataset(site.cache_root, block.beat.prefix, entry["hash"], *wanted)
            except DatasetWriteError as e:
                raise fail(block.name, f"inputs.{iname}", str(e)) from e

