"""The spool directory shared by the bridge (writer of the manifest) and the elements (writers of results).

One directory per submitted array, ``<spool_root>/<submission tag>/``, holding
``manifest.json`` (from the bridge, before sbatch: one file per array, written
once, atomically, with one fsync) and per element ``split-N.result.json`` (N the
array index, from the element). The manifest is::

    {"format": 1, "submission_tag": tag, "cache_root": "/abs/cache", "offset": o,
     "configuration": {what every split of the array shares},
     "splits": {"N": {"range": [s, e] | null, "split_index": N + o, "split_id": id}, ...}}

and element N's configuration is the shared one updated with its entry
(bridge.submission_db.get_configuration_for_split). The shared part is written
once, so an entry is ~70 bytes: an element reads the whole manifest (~70 KB at
1,000 elements; bench/manifest_read.py measures it against a file per split)
rather than seeking through an offset table. ``split-N.json`` (one file per
split, written by bridges before issue 12) is still read when an array has no
manifest, so elements of arrays submitted before an upgrade still run. The
bridge's submitter and poller use these functions so that both sides name and
write files one way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from bridge.results import result_problem
from bridge.sbatch_scripts.element_io import atomic_write
from bridge.values import JsonError, load_json


def array_spool_dir(spool_root: str | Path, tag: str) -> Path:
    """``<spool_root>/<tag>``: the directory given to the elements as --spool."""
    if not tag or "/" in tag or tag in {".", ".."}:
        raise ValueError(f"a submission tag cannot name a spool directory: {tag!r}")
    return Path(spool_root) / tag


MANIFEST_FORMAT = 1


class ManifestError(ValueError):
    """The array's manifest (or legacy split file) is missing, unreadable, or not this element's."""


def manifest_file(spool: Path) -> Path:
    return spool / "manifest.json"


def split_file(spool: Path, index: int) -> Path:
    """The legacy per-split file (bridges before the manifest); read only when there is no manifest."""
    return spool / f"split-{index}.json"


def result_file(spool: Path, index: int) -> Path:
    return spool / f"split-{index}.result.json"


def write_manifest(spool: Path, tag: str, cache_root: str | Path, offset: int,
                   configuration: Mapping[str, Any], entries: Mapping[int, Mapping[str, Any]]) -> Path:
    """Write the array's ``manifest.json`` once, atomically (the directory is created); returns its path.

    `entries` maps each array index to the split's own configuration keys.
    """
    spool.mkdir(parents=True, exist_ok=True)
    document = {"format": MANIFEST_FORMAT, "submission_tag": tag, "cache_root": str(Path(cache_root).resolve()),
                "offset": offset, "configuration": dict(configuration),
                "splits": {str(index): entry for index, entry in entries.items()}}
    target = manifest_file(spool)
    atomic_write(target, json.dumps(document, separators=(",", ":")).encode())
    return target


class ElementEntry(NamedTuple):
    """What one element reads of the spool: unchecked values, and the file they came from.

    (A NamedTuple: this module is also loaded by path, outside any package.)
    """

    configuration: dict[str, Any]
    cache_root: Any
    submission_tag: Any
    file: Path


def read_element(spool: Path, index: int) -> ElementEntry:
    """The configuration, cache root and submission tag of array index `index`, from the manifest.

    Falls back to the legacy ``split-<index>.json`` when the array has no
    manifest. Checks only the shape that finds the entry (ManifestError); the
    element checks the values.
    """
    file = manifest_file(spool)
    try:
        document = json.loads(file.read_bytes())
    except FileNotFoundError:
        return _read_legacy(spool, index)
    except (OSError, ValueError) as e:
        raise ManifestError(f"cannot read manifest {file}: {e}") from e
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT or not isinstance(
            document.get("configuration"), dict) or not isinstance(document.get("splits"), dict):
        raise ManifestError(f"{file}: expected a format {MANIFEST_FORMAT} manifest with 'configuration' "
                            "and 'splits' objects")
    entry = document["splits"].get(str(index))
    if not isinstance(entry, dict):
        raise ManifestError(f"{file}: no entry for array index {index}")
    offset = document.get("offset")
    if not isinstance(offset, int) or entry.get("split_index") != index + offset:
        raise ManifestError(f"{file}: the entry of array index {index} is split {entry.get('split_index')!r}, "
                            f"not {index} + offset {offset!r}")
    return ElementEntry({**document["configuration"], **entry}, document.get("cache_root"),
                        document.get("submission_tag"), file)


def _read_legacy(spool: Path, index: int) -> ElementEntry:
    file = split_file(spool, index)
    try:
        document = json.loads(file.read_bytes())
    except FileNotFoundError as e:
        raise ManifestError(f"no manifest {manifest_file(spool)} (nor split file {file.name})") from e
    except (OSError, ValueError) as e:
        raise ManifestError(f"cannot read spool file {file}: {e}") from e
    if not isinstance(document, dict) or not isinstance(document.get("configuration"), dict):
        raise ManifestError(f"{file}: expected an object with a 'configuration' object")
    return ElementEntry(document["configuration"], document.get("cache_root"), document.get("submission_tag"), file)


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
