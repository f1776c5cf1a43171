"""The element's data: inputs over a split's range, outputs in BEAT's cache layout.

Format of a cached file, per split range ``[s, e]`` under ``<root>/<path>``:

- ``<path>.<s>.<e>.data``: JSON lines, one per data unit, in index order:
  ``{"index": i, "value": v}`` (canonical JSON: sorted keys, no spaces).
- ``<path>.<s>.<e>.index``: one ``i i`` line per data unit (every unit is its
  own data block, so a downstream splitter may cut anywhere).
- ``.data.checksum`` / ``.index.checksum``: the SHA-256 hex of each file, no newline.

Each file is written to a hidden temporary file in the same directory, synced and
renamed into place: data, then index, then the two checksums last, so a reader
(bridge.cache.is_cache_complete) sees either nothing or whole files, and never a
verified set before everything is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError

Range = tuple[int, int]


class ElementSystemError(BridgeError):
    """The element could not do its work for a reason that is not the algorithm's."""


class OutputError(BridgeError):
    """The algorithm returned outputs that do not fit its block (a user error)."""


@dataclass
class IOStats:
    """Bytes read from the cache and written to it by one element."""

    read: int = 0
    written: int = 0


def safe_join(root: Path, path: str) -> Path:
    """`root / path`, refusing a path that could leave the cache root."""
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise ElementSystemError(f"bad cache path {path!r}")
    return root / path


# --- reading ------------------------------------------------------------------------------


def read_inputs(
    inputs: Mapping[str, Mapping[str, Any]], root: Path, span: Range | None, stats: IOStats
) -> dict[str, list[Any]]:
    """Every input's values over `span` (the whole input when None), by input name."""
    values = {}
    for name, entry in sorted(inputs.items()):
        try:
            if "dataset" in entry:
                values[name] = _read_dataset(entry, span)
            else:
                values[name] = read_cached(root, entry.get("path"), span, stats)
        except ElementSystemError as e:
            raise ElementSystemError(f"input {name!r}: {e}") from e
    return values


def _read_dataset(entry: Mapping[str, Any], span: Range | None) -> list[Any]:
    """Units of a generated dataset (bridge.examples.datasets; imported here so that an
    installation without it gives a system error in the result, not a crash)."""
    try:
        from bridge.examples.datasets import OutOfRange, UnknownDataset, generate
    except ImportError as e:
        raise ElementSystemError(f"generated datasets are not installed: {e}") from e
    start, end = span if span is not None else (None, None)
    try:
        return generate(entry["dataset"], int(entry["size"]), start, end)
    except (UnknownDataset, OutOfRange) as e:
        raise ElementSystemError(str(e.args[0])) from e
    except (KeyError, TypeError, ValueError) as e:
        raise ElementSystemError(f"bad dataset input {dict(entry)!r}: {e}") from e


def split_files(base: Path, suffix: str) -> list[tuple[int, int, Path]]:
    """(start, end, file) of every ``<base>.<start>.<end><suffix>``, sorted by start ([] if unreadable).

    The one scan of BEAT's per-split cache files: the element reads its inputs
    with it, and the bridge checks indexes and completeness (bridge.cache).
    """
    pattern = re.compile(re.escape(base.name) + r"\.(\d+)\.(\d+)" + re.escape(suffix) + "$")
    try:
        entries = list(base.parent.iterdir())
    except OSError:
        return []
    found = [(int(m[1]), int(m[2]), e) for e in entries if (m := pattern.match(e.name))]
    return sorted(found)


def read_cached(root: Path, path: str | None, span: Range | None, stats: IOStats) -> list[Any]:
    """The values of units `span` of a cached file (all of them when None), checksums verified."""
    base = safe_join(root, path or "")
    files = [(s, e, f) for s, e, f in split_files(base, ".data")
             if span is None or (s <= span[1] and e >= span[0])]
    units: dict[int, Any] = {}
    for start, end, file in files:
        units.update(_read_data_file(file, start, end, stats))
    if not units:
        raise ElementSystemError(f"no cached data at {base} for range {span}")
    if span is None:
        span = (0, max(units))
    missing = [i for i in range(span[0], span[1] + 1) if i not in units]
    if missing:
        raise ElementSystemError(f"{base}: {len(missing)} unit(s) of [{span[0]}, {span[1]}] are "
                                 f"not in the cache (first missing: {missing[0]})")
    return [units[i] for i in range(span[0], span[1] + 1)]


def _read_data_file(file: Path, start: int, end: int, stats: IOStats) -> dict[int, Any]:
    try:
        data = file.read_bytes()
        expected = file.with_name(file.name + ".checksum").read_text().strip()
    except OSError as e:
        raise ElementSystemError(f"cannot read {file}: {e}") from e
    stats.read += len(data)
    if hashlib.sha256(data).hexdigest() != expected:
        raise ElementSystemError(f"{file}: checksum mismatch")
    units = {}
    try:
        for line in data.decode().splitlines():
            if line.strip():
                record = json.loads(line)
                units[int(record["index"])] = record["value"]
    except (ValueError, KeyError, TypeError) as e:
        raise ElementSystemError(f"{file}: not a data file of this format: {e}") from e
    if any(not start <= i <= end for i in units):
        raise ElementSystemError(f"{file}: holds units outside [{start}, {end}]")
    return units


# --- writing ------------------------------------------------------------------------------


def check_outputs(returned: Any, declared: Sequence[str], span: Range | None) -> dict[str, list[Any]]:
    """The algorithm's outputs, checked against the block (OutputError says what is wrong)."""
    if not isinstance(returned, Mapping):
        raise OutputError(f"the algorithm returned {type(returned).__name__}, expected a dict of "
                          f"output name -> list of values for outputs {list(declared)}")
    if set(returned) != set(declared):
        raise OutputError(f"the algorithm returned outputs {sorted(map(str, returned))}, "
                          f"the block declares {sorted(declared)}")
    checked = {}
    for name in declared:
        values = returned[name]
        if not isinstance(values, (list, tuple)):
            raise OutputError(f"output {name!r}: expected a list, got {type(values).__name__}")
        if span is not None and len(values) != span[1] - span[0] + 1:
            raise OutputError(f"output {name!r}: {len(values)} values for the "
                              f"{span[1] - span[0] + 1} units of range [{span[0]}, {span[1]}]")
        if not values:
            raise OutputError(f"output {name!r} is empty: an output needs at least one value")
        checked[name] = list(values)
    return checked


def encode(values: Sequence[Any], start: int) -> tuple[bytes, bytes]:
    """The .data and .index contents of `values` numbered from `start` (OutputError if not JSON)."""
    lines, index = [], []
    for offset, value in enumerate(values):
        i = start + offset
        try:
            lines.append(json.dumps({"index": i, "value": value}, sort_keys=True,
                                    separators=(",", ":"), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise OutputError(f"value of unit {i} cannot be stored as JSON: {e}") from e
        index.append(f"{i} {i}")
    return ("\n".join(lines) + "\n").encode(), ("\n".join(index) + "\n").encode()


def write_output(root: Path, path: str, start: int, values: Sequence[Any], stats: IOStats) -> Path:
    """Write one output's split files atomically (checksums last); returns the .data path."""
    data, index = encode(values, start)
    base = safe_join(root, path)
    stem = f"{base.name}.{start}.{start + len(values) - 1}"
    contents = [
        (f"{stem}.data", data), (f"{stem}.index", index),
        (f"{stem}.data.checksum", hashlib.sha256(data).hexdigest().encode()),
        (f"{stem}.index.checksum", hashlib.sha256(index).hexdigest().encode()),
    ]
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for name, content in contents:
            atomic_write(base.parent / name, content)
            stats.written += len(content)
        _sync_dir(base.parent)
    except OSError as e:
        raise ElementSystemError(f"cannot write output at {base}: {e}") from e
    return base.parent / f"{stem}.data"


def atomic_write(target: Path, content: bytes) -> None:
    """Write `content` to a hidden temporary file beside `target`, sync it, rename it over `target`."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
