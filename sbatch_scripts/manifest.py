"""An array's manifest: every element's configuration in one file, written once; each element reads only its own.

``<spool>/<tag>/manifest.jsonl`` is written by the bridge before sbatch, once,
atomically, with one fsync (issue 12: one file per split cost an fsync per split).
It is JSON lines:

- line 1, the header: ``{"format": 1, "submission_tag": tag, "cache_root": "/abs/cache",
  "offset": o, "first": a, "width": w, "configuration": {what every split shares}}``,
  and ``"linger": seconds`` when the elements are to wait that long at most, after
  a successful result, for the bridge's release (bridge.handover);
- then one line per array index from ``first`` on, each exactly ``width`` bytes
  with its newline: index N's entry ``{"range": [s, e] | null, "split_index": N + o,
  "split_id": id}`` padded with spaces, or only spaces for an index the array does
  not have.

Element N's configuration is the shared one updated with its entry (the same as
bridge.element_config.get_configuration_for_split). Fixed-width lines are the
offset table: an element reads the header and seeks to its own line, so an
array of n elements reads O(n) bytes in all, not O(n^2) (bench/manifest_read.py).
The element checks that its entry is split N + offset. An array without a
manifest, spooled by a bridge before manifests, is read from its
``split-N.json`` (``{"configuration", "cache_root", "submission_tag"}``), so
its elements still run after an upgrade.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from bridge.sbatch_scripts.element_io import atomic_write

FORMAT = 1
MAX_LINGER = 60.0  # seconds: an element never waits longer for its release, whatever a header says
_SEPARATORS = (",", ":")


class ManifestError(ValueError):
    """The array's manifest (or legacy split file) is missing, unreadable, or has no entry of this element's."""


class ElementEntry(NamedTuple):
    """What one element reads of the spool: unchecked values, and the file they came from.

    (A NamedTuple, not a dataclass: tests load these modules by path, outside the package.)
    """

    configuration: dict[str, Any]
    cache_root: Any
    submission_tag: Any
    file: Path
    linger: float = 0.0  # seconds to wait for the bridge's release after a successful result (bridge.handover)


def manifest_file(spool: Path) -> Path:
    return spool / "manifest.jsonl"


def split_file(spool: Path, index: int) -> Path:
    """The legacy per-split file (bridges before the manifest); read only when there is no manifest."""
    return spool / f"split-{index}.json"


def write_manifest(spool: Path, tag: str, cache_root: str | Path, offset: int,
                   configuration: Mapping[str, Any], entries: Mapping[int, Mapping[str, Any]],
                   linger: float = 0.0) -> Path:
    """Write the array's manifest once, atomically (the directory is created); returns its path.

    `entries` maps each array index to the split's own configuration keys;
    `linger` > 0 goes into the header (bridge.handover).
    """
    lines = {index: json.dumps(entry, separators=_SEPARATORS).encode() for index, entry in entries.items()}
    first, last = min(lines), max(lines)
    width = max(map(len, lines.values())) + 1
    header = {"format": FORMAT, "submission_tag": tag, "cache_root": str(Path(cache_root).resolve()),
              "offset": offset, "first": first, "width": width, "configuration": dict(configuration)}
    if linger > 0:
        header["linger"] = linger
    blank = b" " * (width - 1)
    body = b"\n".join(lines.get(index, blank).ljust(width - 1) for index in range(first, last + 1))
    spool.mkdir(parents=True, exist_ok=True)
    target = manifest_file(spool)
    atomic_write(target, json.dumps(header, separators=_SEPARATORS).encode() + b"\n" + body + b"\n")
    return target


def read_element(spool: Path, index: int) -> ElementEntry:
    """The configuration, cache root and submission tag of array index `index`: the header and its own line.

    Falls back to the legacy ``split-<index>.json`` when the array has no
    manifest. Checks what finds the entry and that it is this index's
    (ManifestError); the element checks the values.
    """
    file = manifest_file(spool)
    try:
        with open(file, "rb") as stream:
            header_line = stream.readline()
            header = _header(file, header_line)
            position = index - header["first"]
            line = b""
            if position >= 0:
                stream.seek(len(header_line) + position * header["width"])
                line = stream.read(header["width"])
    except FileNotFoundError:
        return _read_legacy(spool, index)
    except OSError as e:
        raise ManifestError(f"cannot read manifest {file}: {e}") from e
    entry = _entry(file, index, line, header)
    return ElementEntry({**header["configuration"], **entry}, header.get("cache_root"),
                        header.get("submission_tag"), file, header.get("linger", 0.0))


def array_linger(spool: Path) -> float:
    """The header's `linger` of an array's manifest (bridge.handover); 0 when it has none or cannot be read."""
    file = manifest_file(spool)
    try:
        with open(file, "rb") as stream:
            return float(_header(file, stream.readline()).get("linger", 0.0))
    except (OSError, ManifestError):
        return 0.0


def _header(file: Path, line: bytes) -> dict[str, Any]:
    try:
        header = json.loads(line)
    except ValueError as e:
        raise ManifestError(f"cannot read manifest {file}: its header is not JSON: {e}") from e
    if not (isinstance(header, dict) and header.get("format") == FORMAT
            and isinstance(header.get("configuration"), dict)
            and all(_is_int(header.get(key)) for key in ("offset", "first", "width")) and header["width"] > 0):
        raise ManifestError(f"{file}: expected a format {FORMAT} manifest header with 'configuration', "
                            "'offset', 'first' and 'width'")
    linger = header.get("linger", 0.0)
    if not isinstance(linger, (int, float)) or isinstance(linger, bool) or not 0 <= linger <= MAX_LINGER:
        raise ManifestError(f"{file}: the header's 'linger' must be a number of seconds from 0 to {MAX_LINGER}, "
                            f"got {linger!r}")
    return header


def _entry(file: Path, index: int, line: bytes, header: Mapping[str, Any]) -> dict[str, Any]:
    """Index `index`'s entry from its line, checked to be split index + offset."""
    if len(line) != header["width"] or not line.endswith(b"\n") or not line.strip():
        raise ManifestError(f"{file}: no entry for array index {index}")
    try:
        entry = json.loads(line)
    except ValueError as e:
        raise ManifestError(f"{file}: the entry of array index {index} is not JSON: {e}") from e
    expected = index + header["offset"]
    if not isinstance(entry, dict) or entry.get("split_index") != expected:
        seen = entry.get("split_index") if isinstance(entry, dict) else entry
        raise ManifestError(f"{file}: the entry of array index {index} is split {seen!r}, not {index} + offset "
                            f"{header['offset']}")
    return entry


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
