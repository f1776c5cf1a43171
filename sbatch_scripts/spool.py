"""The spool directory shared by the bridge (writer of the manifest) and the elements (writers of results).

One directory per submitted array, ``<spool_root>/<submission tag>/``, holding
the array's ``manifest.jsonl`` (from the bridge, before sbatch: every
element's configuration, see bridge.sbatch_scripts.manifest) and per element
``split-N.result.json`` (N the array index, from the element), and
``split-N.release`` (from the bridge, once it has handed the element's split
over: bridge.handover). The bridge's
submitter and poller use these functions so that both sides name and write
files one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.results import result_problem
from bridge.values import JsonError, load_json


def array_spool_dir(spool_root: str | Path, tag: str) -> Path:
    """``<spool_root>/<tag>``: the directory given to the elements as --spool."""
    if not tag or "/" in tag or tag in {".", ".."}:
        raise ValueError(f"a submission tag cannot name a spool directory: {tag!r}")
    return Path(spool_root) / tag


def result_file(spool: Path, index: int) -> Path:
    return spool / f"split-{index}.result.json"


def release_file(spool: Path, index: int) -> Path:
    """``split-N.release``: the bridge's word that element N may end (bridge.handover)."""
    return spool / f"split-{index}.release"


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
