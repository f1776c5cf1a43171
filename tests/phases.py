"""The suite's phases (scripts/pytest_phases.sh), chosen with --phase; without it every test runs.

Most live tests wait on Slurm, not on the CPU, so CI runs them several at once (pytest-xdist).
A test that changes what the others rely on -- stops a cluster daemon, sets a node down,
restarts PostgreSQL, changes a partition or an association, takes the whole cluster down --
carries `@pytest.mark.exclusive("why")`; the reason is required, it tells the next reader why
the test may not share the cluster (tests/test_phases.py finds a disruptive test without it).

- `--phase=shared`: the tests that use a shared part (the Slurm cluster, PostgreSQL, the sshd
  that reaches the cluster) and are not exclusive: side by side.
- `--phase=exclusive`: the exclusive tests, one after another (no -n).
- `--phase=isolated`: the tests that use no shared part (fakes, recorded replies, SQLite):
  nothing an outage can disturb, so they run beside the exclusive phase, on the cores its
  outages leave idle.

A module of its own, beside required_parts.py, called by tests/conftest.py's hooks.
"""

from __future__ import annotations

import pytest

PHASES = ("all", "shared", "exclusive", "isolated")
# Fixtures that reach a part other tests share: the cluster, the PostgreSQL server, the cluster over ssh.
SHARED_FIXTURES = {"slurm", "slurm_cluster", "postgres_url", "sshd", "ssh_runner", "any_runner"}
SHARED_MARKS = ("slurm", "postgres", "sshd")


def add_option(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase", choices=PHASES, default="all",
        help="shared: tests of the shared cluster/PostgreSQL that may run side by side (-n); exclusive: the "
             "exclusive-marked ones (run them alone); isolated: tests using no shared part; all (default): every test",
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


def uses_shared_part(item: pytest.Item) -> bool:
    """Whether the test reaches the cluster or the PostgreSQL server: by a fixture it names, a mark
    (slurm, postgres, sshd: a parameter's own marks too) or a "postgresql" parameter (db_url's)."""
    if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    if any(item.get_closest_marker(name) for name in SHARED_MARKS):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.params.values()


def check_fixture(argname: str, request: pytest.FixtureRequest) -> None:
    """Fail a test of the isolated phase that asks for a shared part anyway
    (request.getfixturevalue("postgres_url") is invisible at collection): it could meet an outage."""
    item = request.node
    if (argname in SHARED_FIXTURES and isinstance(item, pytest.Item)
            and request.config.getoption("--phase") == "isolated"):
        pytest.fail(f"{item.nodeid} asks for {argname} but was taken for a test using no shared part "
                    f"(tests/phases.py): give it the postgres or slurm mark, or name the fixture", pytrace=False)


def phase_of(item: pytest.Item) -> str:
    """exclusive for a marked test (its reason checked), else shared or isolated by the parts it reaches."""
    if is_exclusive(item):
        return "exclusive"
    return "shared" if uses_shared_part(item) else "isolated"


def select_phase(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests of --phase, in their order; the rest are reported deselected, as -m does."""
    phase = config.getoption("--phase")
    kept = [item for item in items if phase_of(item) == phase or phase == "all"]
    if len(kept) < len(items):
        chosen = set(kept)
        config.hook.pytest_deselected(items=[item for item in items if item not in chosen])
        items[:] = kept
