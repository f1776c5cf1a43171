"""The demo's BEAT-native experiment: BEAT's own test-prefix algorithms, run when beat.backend.python is installed.

``left`` (sequential/echo of the generated ``numbers``) and ``right`` (legacy/echo of
``squares``), both datasets written in BEAT's format at ``experiments add``, feed
``sum`` (sequential/add); 2 splits each. Its total is read back with BEAT's own
CachedDataSource: what a BEAT web server would read of our cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.examples.demo_experiments import ENVIRONMENT, SIZE

NAME = "beat-native"


def test_prefix() -> Path | None:
    """beat.backend.python's test prefix (its algorithms and dataformats); None when it is not installed."""
    try:
        from beat.backend.python.test import prefix
    except ImportError:
        return None
    return Path(prefix)


def _block(algorithm: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"algorithm": algorithm, "queue": "default", "environment": ENVIRONMENT, "required_slots": 2,
            "inputs": inputs, "outputs": ["out"]}


def declaration() -> dict[str, Any]:
    return {"name": NAME, "author": "beatrice", "blocks": {
        "left": _block("sequential/echo/1", {"in": {"dataset": "numbers", "size": SIZE}}),
        "right": _block("legacy/echo/1", {"in": {"dataset": "squares", "size": SIZE}}),
        "sum": _block("sequential/add/1", {"in1": {"block": "left", "output": "out"},
                                           "in2": {"block": "right", "output": "out"}}),
    }}


def expected_total() -> int:
    return sum(n + n * n for n in range(SIZE))


def total(cache_root: Path, path: str, prefix: Path) -> int | None:
    """The sum of the values of BEAT cache file `path`, read with BEAT's CachedDataSource."""
    from beat.backend.python.data import CachedDataSource

    source = CachedDataSource()
    if not source.setup(str(cache_root / path) + ".data", str(prefix)):
        return None
    return sum(int(source[i][0].value) for i in range(len(source)))
