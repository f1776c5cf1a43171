"""BEAT's on-disk cache: where the root is, reading data indexes, checking completeness.

A cached file's hash ``h`` lives under the root at ``h[0:2]/h[2:4]/h[4:6]/h[6:]``;
each split writes ``<path>.<start>.<end>.data`` and ``.index`` (one ``start end``
line per data block) plus ``.data.checksum`` / ``.index.checksum`` (SHA-256 hex).
These are BEAT's own files: beat.backend.python's CachedDataSink writes the same
``.index`` lines and ``.checksum`` files (hash.hashFileContents: the SHA-256 hex of
the file), so the checks here hold on a BEAT algorithm block's outputs and on BEAT
cache files given as roots (tests/test_element_beat.py) as on the callables' JSON lines.
The cache root is always resolved at call time: an explicit argument, else the
module setting ``CACHE_ROOT``, else the ``BEAT_BRIDGE_CACHE`` environment variable.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from bridge.errors import BridgeError
from bridge.sbatch_scripts.element_io import split_files

log = logging.getLogger(__name__)

CACHE_ROOT: str | None = None  # set by the CLI from the configuration; read at call time
ENV_VAR = "BEAT_BRIDGE_CACHE"

Range = tuple[int, int]


class CacheError(BridgeError):
    """The cache is missing, incomplete or unreadable."""


def cache_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: the argument, else CACHE_ROOT, else $BEAT_BRIDGE_CACHE."""
    chosen = root or CACHE_ROOT or os.environ.get(ENV_VAR)
    if not chosen:
        raise CacheError(f"no cache root: pass one, or set {ENV_VAR}")
    return Path(chosen)


def read_index(path: str, root: str | os.PathLike[str] | None = None) -> list[Range]:
    """The data blocks of a cached file, from all its ``.index`` files (CacheError if none)."""
    base = cache_root(root) / path
    try:
        files = split_files(base, ".index")
        blocks = []
        for _start, _end, file in files:
            for line in file.read_text().split("\n"):
                if line.strip():
                    start, end = line.split()
                    blocks.append((int(start), int(end)))
    except (OSError, ValueError) as e:
        raise CacheError(f"cannot read the index of {base}: {e}") from e
    if not blocks:
        raise CacheError(f"no index for {base} (yet)")
    return sorted(blocks)


def is_cache_complete(
    path: str, nb_expected_blocks: int, cache: str | os.PathLike[str] | None = None
) -> bool:
    """True only if `path` has exactly that many index files, contiguous from 0, all verified.

    Each index needs its data file, and both checksums must match. Any error
    (missing root, unreadable file, bad name) means False: the shared file
    system may simply not show the files yet.
    """
    try:
        base = cache_root(cache) / path
        indexes = split_files(base, ".index")
        if len(indexes) != nb_expected_blocks:
            return False
        expected_start = 0
        for start, end, index in indexes:
            if start != expected_start or end < start:
                return False
            data = index.with_name(index.name[: -len(".index")] + ".data")
            if not (_checksum_ok(data) and _checksum_ok(index)):
                return False
            expected_start = end + 1
        return True
    except Exception as e:  # noqa: BLE001 - any error means "not complete (yet)"
        log.debug("cache %s not complete: %s", path, e)
        return False


def _checksum_ok(file: Path) -> bool:
    """Whether `file` matches the SHA-256 in its ``.checksum`` neighbour."""
    expected = file.with_name(file.name + ".checksum").read_text().strip()
    return hashlib.sha256(file.read_bytes()).hexdigest() == expected


def split_ranges(indexes: Sequence[Sequence[Range]], nb_splits: int,
                 dataset_sizes: Sequence[int] = ()) -> list[Range]:
    """Up to `nb_splits` contiguous inclusive ranges cut on boundaries common to all inputs.

    Only the starts of data blocks present in every input are cut points (as
    beat.core's foundSplitRanges); units are shared out evenly, the first
    ranges getting one more when they do not divide. Fewer units, fewer ranges.
    A dataset input of `size` units counts as an index of one block per unit,
    computed arithmetically (a range, never a list): its cost is that of the
    splits, not of its size.
    """
    if (not indexes and not dataset_sizes) or nb_splits < 1:
        return []
    units: Sequence[int]
    if indexes:
        starts = set.intersection(*({start for start, _ in index} for index in indexes))
        last = min(max(end for _, end in index) for index in indexes)
        if dataset_sizes:
            last = min(last, min(dataset_sizes) - 1)
        units = sorted(s for s in starts if s <= last)
    else:
        last = min(dataset_sizes) - 1
        units = range(last + 1)
    count = min(nb_splits, len(units))
    if count == 0:
        return []
    size, extra = divmod(len(units), count)
    ranges, first = [], 0
    for i in range(count):
        following = first + size + (1 if i < extra else 0)
        end = units[following] - 1 if following < len(units) else last
        ranges.append((units[first], end))
        first = following
    return ranges
