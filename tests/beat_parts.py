"""beat.backend.python for the tests: its own test prefix, or need() (a failure under BRIDGE_REQUIRE_SLURM=1).

The `beat` extra (pip install -e '.[beat]') is a part like the cluster: CI installs it and
its absence must fail the BEAT tests there, not skip them.
"""

from __future__ import annotations

from pathlib import Path

from required_parts import need

MINI_PREFIX = Path(__file__).parent / "data" / "beat_prefix"  # validation only: a copy of a few of its files


def beat_test_prefix() -> Path:
    """beat.backend.python's test prefix (sequential/add, process_crash, user/single_integer/1...)."""
    try:
        from beat.backend.python.test import prefix
    except ImportError as e:
        need("beat.backend.python", f"{e} (pip install -e '.[beat]': Python <= 3.11)")
    return Path(prefix)
