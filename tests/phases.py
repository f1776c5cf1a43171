"""The suite's two phases (scripts/test.sh): `--phase=shared` runs side by side, `--phase=exclusive` alone.

Most live tests wait on Slurm, not on the CPU, so scripts/test.sh runs them several at
once (pytest-xdist). A test that changes what the others rely on -- stops a cluster
daemon, sets a node down, restarts PostgreSQL, changes a partition or an association,
takes the whole cluster down -- carries `@pytest.mark.exclusive("why")` and runs in the
second phase, one at a time with nothing beside it. Without --phase every test runs
(a developer's plain `pytest`). The reason is required: it is what tells the next
reader why the test may not share the cluster.

A module of its own, beside required_parts.py, imported by tests/conftest.py's hooks.
"""

from __future__ import annotations

import pytest

PHASES = ("all", "shared", "exclusive")


def add_option(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase", choices=PHASES, default="all",
        help="shared: only tests without the `exclusive` mark (safe to run side by side with -n); "
             "exclusive: only those with it; all (default): every test",
    )


def is_exclusive(item: pytest.Item) -> bool:
    """Whether the test carries the `exclusive` mark; a mark without its reason is an error."""
    mark = item.get_closest_marker("exclusive")
    if mark is None:
        return False
    if not (mark.args and isinstance(mark.args[0], str) and mark.args[0].strip()):
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.exclusive needs its reason, "
                                f"e.g. @pytest.mark.exclusive(\"stops slurmdbd\")")
    return True


def select_phase(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (pytest's -m way, counted as deselected) the tests outside --phase."""
    phase = config.getoption("--phase")
    kept, dropped = [], []
    for item in items:
        exclusive = is_exclusive(item)
        if phase == "all" or (phase == "exclusive") == exclusive:
            kept.append(item)
        else:
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
