"""How a missing real part (Slurm cluster, PostgreSQL, sshd, chromium) is reported: skipped on a developer's
machine, failed under BRIDGE_REQUIRE_SLURM=1 (set by .ci/run): CI must never pass by skipping.

A module of its own, not conftest.py: every conftest.py outside a package is imported as "conftest", so
`from conftest import need` gets whichever one pytest loaded last (tests/db's, in a run without
tests/integration). `from required_parts import need` is always this one.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE = os.environ.get("BRIDGE_REQUIRE_SLURM") == "1"


def need(part: str, why: str) -> NoReturn:
    """Skip for lack of a real part, or fail when BRIDGE_REQUIRE_SLURM=1 says it must be there."""
    message = f"{part} is not available: {why}"
    if REQUIRE:
        pytest.fail(f"{message} (BRIDGE_REQUIRE_SLURM=1 requires it)", pytrace=False)
    pytest.skip(message)
