"""The spool directory shared by the bridge (writer of split files) and the elements (writers of results).

One directory per submitted array, ``<spool_root>/<submission tag>/``, holding per
split (array index == split index) ``split-N.json`` (from the bridge, before
sbatch) and ``split-N.result.json`` (from the element). The bridge's submitter and
poller may use these functions so that both sides name and write files one way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bridge.results import result_problem
from bridge.sbatch_scripts.element_io import atomic_write
from bridge.values import JsonError, load_json


def array_spool_dir(spool_root: str | Path, tag: str) -> Path:
    """``<spool_root>/<tag>``: the directory given to the elements as --spool."""
    if not tag or "/" in tag or tag in {".", ".."}:
        raise ValueError(f"a submission tag cannot name a spool directory: {tag!r}")
    return Path(spool_root) / tag


def split_file(spool: Path, index: int) -> Path:
    return spool / f"split-{index}.json"


def result_file(spool: Path, index: int) -> Path:
    return spool / f"split-{index}.result.json"


def write_split_file(
    spool: Path, index: int, configuration: Mapping[str, Any], cache_root: str | Path, tag: str
) -> Path:
    """Write ``split-<index>.json`` atomically (the directory is created); returns its path."""
    spool.mkdir(parents=True, exist_ok=True)
    document = {"configuration": dict(configuration), "cache_root": str(Path(cache_root).resolve()),
                "submission_tag": tag}
    target = split_file(spool, index)
    atomic_write(target, json.dumps(document, sort_keys=True).encode())
    return target


def read_result(spool: Path, index: int) -> dict[str, Any] | None:
    """The element's result dict; None if it wrote none (yet, or killed); unreadable -> a system error."""
    file = result_file(spool, index)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        return {"status": 1, "system_error": f"cannot read result file {file}: {e}"}
    try:
        result = load_json(data)
    except JsonError as e:
        return {"status": 1, "system_error": f"result file {file} is not JSON the bridge accepts: {e}"}
    problem = result_problem(result)
    if problem:
        return {"status": 1, "system_error": f"result file {file} is invalid: {problem}"}
    return result
