"""Write BEAT cache entries into a real directory, as a split would."""

from __future__ import annotations

import hashlib
from pathlib import Path

from bridge.hashing import cache_path


def write_entry(
    root: Path, hash_or_path: str, start: int, end: int, blocks: list[tuple[int, int]] | None = None,
    *, data: bytes = b"payload", corrupt: str | None = None,
) -> Path:
    """Write ``<path>.<start>.<end>.data/.index`` and their checksums; return the index file.

    `hash_or_path` is a hash (laid out as BEAT does) or a relative cache path.
    `blocks` are the index lines (default: one block per unit). `corrupt`
    ("data" or "index") writes a wrong checksum for that file.
    """
    path = cache_path(hash_or_path) if "/" not in hash_or_path else hash_or_path
    base = root / f"{path}.{start}.{end}"
    base.parent.mkdir(parents=True, exist_ok=True)
    blocks = blocks if blocks is not None else [(i, i) for i in range(start, end + 1)]
    files = {
        "data": (base.with_name(base.name + ".data"), data),
        "index": (base.with_name(base.name + ".index"),
                  "".join(f"{s} {e}\n" for s, e in blocks).encode()),
    }
    for kind, (file, content) in files.items():
        file.write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        if kind == corrupt:
            digest = "0" * 64
        file.with_name(file.name + ".checksum").write_text(digest)
    return files["index"][0]


def write_complete(root: Path, hash_: str, ranges: list[tuple[int, int]]) -> None:
    """Write a complete cache entry made of one file set per range."""
    for start, end in ranges:
        write_entry(root, hash_, start, end)
