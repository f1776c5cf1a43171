"""Deterministic hashes: block outputs, dataset inputs, job keys, and their cache paths.

The same block (algorithm, parameters, environment, inputs) declared in two
experiments gets the same output hashes, hence the same cached files and the
same job key: that is what makes cache skips and mirrors happen.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any


def sha256_json(value: Any) -> str:
    """SHA-256 hex of the canonical JSON of `value` (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_hash(name: str, size: int) -> str:
    """The hash standing for a dataset input of `size` data units."""
    return sha256_json({"dataset": name, "size": size})


def output_hash(
    algorithm: str,
    parameters: Mapping[str, Any],
    environment: tuple[str, str],
    inputs: Mapping[str, str],
    output: str,
) -> str:
    """The hash of one output of a block, from everything that determines its content."""
    return sha256_json({
        "algorithm": algorithm,
        "parameters": parameters,
        "environment": {"name": environment[0], "version": environment[1]},
        "inputs": dict(inputs),
        "output": output,
    })


def job_key(output_hashes: Iterable[str]) -> str:
    """A job's key (as BEAT): SHA-256 of its blocks' sorted output hashes."""
    return hashlib.sha256("".join(sorted(output_hashes)).encode()).hexdigest()


def cache_path(hash_: str) -> str:
    """BEAT's cache layout of a hash: ``h[0:2]/h[2:4]/h[4:6]/h[6:]`` (relative to the root)."""
    return f"{hash_[0:2]}/{hash_[2:4]}/{hash_[4:6]}/{hash_[6:]}"
