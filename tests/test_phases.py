"""The suite's phases (tests/phases.py): --phase keeps the right tests, and every test that disrupts the
shared cluster or PostgreSQL server is marked exclusive, so that scripts/test.sh never runs it beside others.

The second check reads the test files (ast): a test function, or a fixture of its module that it asks
for, calling one of the disruptive helpers or commands below must carry the mark, itself or through
its module's pytestmark. A new fault test without the mark fails here, not as a flaky neighbour.
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import phases
import pytest

TESTS = Path(__file__).resolve().parent

# Calls that change what every other test relies on (tests/integration/faults.py, campaign.py, the cluster).
DISRUPTIVE_CALLS = {"node_down", "stop_start", "daemon_stopped", "restart_postgres", "stop_daemon",
                    "fault_life", "strike", "_sacctmgr"}
# argv lists (or a helper's first arguments, as _cli("cluster", "down")) that do it by hand: the first two words.
DISRUPTIVE_ARGV = {("sacctmgr", "-i"), ("scontrol", "update"), ("cluster", "down"), ("pg_ctlcluster", "15")}


class _Item:
    """What select_phase reads of a pytest item: its id, marks, fixture names and parameters."""

    def __init__(self, nodeid: str, *marks: pytest.Mark, fixtures: tuple[str, ...] = (), params=None) -> None:
        self.nodeid, self.marks, self.fixturenames = nodeid, list(marks), list(fixtures)
        if params is not None:
            self.callspec = SimpleNamespace(params=params)

    def get_closest_marker(self, name: str):
        return next((m for m in self.marks if m.name == name), None)


def _config(phase: str, deselected: list) -> SimpleNamespace:
    hook = SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items))
    return SimpleNamespace(getoption=lambda name: phase, hook=hook)


def _items() -> list[_Item]:
    return [_Item("fake"), _Item("live", fixtures=("tmp_path", "slurm")),
            _Item("pg", fixtures=("factory",), params={"db_url": "postgresql"}),
            _Item("lite", fixtures=("factory",), params={"db_url": "sqlite"}),
            _Item("marked", pytest.mark.postgres.mark), _Item("ssh", fixtures=("any_runner",)),
            _Item("x", pytest.mark.exclusive("stops slurmdbd").mark, fixtures=("slurm_cluster",))]


@pytest.mark.parametrize("phase, kept", [
    ("all", ["fake", "live", "pg", "lite", "marked", "ssh", "x"]),
    ("shared", ["live", "pg", "marked", "ssh"]),
    ("exclusive", ["x"]),
    ("isolated", ["fake", "lite"]),
])
def test_each_phase_keeps_its_tests_in_order_and_reports_the_rest_deselected(phase, kept):
    items, deselected = _items(), []
    phases.select_phase(_config(phase, deselected), items)
    assert [i.nodeid for i in items] == kept
    assert sorted(i.nodeid for i in deselected) == sorted({i.nodeid for i in _items()} - set(kept))


@pytest.mark.parametrize("phase", ["all", "shared", "isolated"])
def test_an_exclusive_mark_without_its_reason_is_a_usage_error_in_every_phase(phase):
    with pytest.raises(pytest.UsageError, match="t::x: @pytest.mark.exclusive needs its reason"):
        phases.select_phase(_config(phase, []), [_Item("t::x", pytest.mark.exclusive.mark)])


def test_the_postgres_fixture_fails_a_test_of_the_isolated_phase(request):
    class Probe(pytest.Item):
        def runtest(self):  # pragma: no cover - never run, only looked at
            pass

    probe = Probe.from_parent(request.node.parent, name="probe")
    asking = SimpleNamespace(node=probe, config=SimpleNamespace(getoption=lambda name: "isolated"))
    with pytest.raises(pytest.fail.Exception, match="probe asks for postgres_url but was taken for a test using no"):
        phases.check_fixture("postgres_url", asking)
    phases.check_fixture("sqlite_url", asking)  # not a shared part: nothing to say
    asking.config = SimpleNamespace(getoption=lambda name: "shared")
    phases.check_fixture("postgres_url", asking)  # the shared phase is where it belongs


def _marks_exclusive(decorators: list[ast.expr]) -> bool:
    return any("exclusive" in ast.unparse(d) for d in decorators)


def _disrupts(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = sub.func.attr if isinstance(sub.func, ast.Attribute) else getattr(sub.func, "id", "")
            if name in DISRUPTIVE_CALLS:
                return True
        words = sub.elts if isinstance(sub, ast.List | ast.Tuple) else sub.args if isinstance(sub, ast.Call) else []
        if tuple(getattr(w, "value", None) for w in words[:2]) in DISRUPTIVE_ARGV:  # ["sacctmgr", "-i", ...]
            return True
    return False


def _unmarked_disruptive_tests(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    module_marked = any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
                        and "exclusive" in ast.unparse(n.value) for n in tree.body)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    found = []
    for name, function in functions.items():
        if not name.startswith("test_") or module_marked or _marks_exclusive(function.decorator_list):
            continue
        fixtures = [functions[a.arg] for a in function.args.args if a.arg in functions]
        if _disrupts(function) or any(_disrupts(f) for f in fixtures):
            found.append(f"{path.name}::{name}")
    return found


def test_every_test_that_disrupts_the_shared_cluster_or_database_is_marked_exclusive():
    files = sorted(TESTS.rglob("test_*.py"))
    assert len(files) > 50  # the whole suite was read, not an empty glob
    unmarked = [test for path in files for test in _unmarked_disruptive_tests(path)]
    assert unmarked == [], "mark these @pytest.mark.exclusive(\"why\") (tests/phases.py): " + ", ".join(unmarked)


def test_the_guard_sees_a_disruptive_test_without_the_mark(tmp_path):
    source = ("import pytest\nfrom faults import node_down\n\n"
              "def test_alone(slurm):\n    with node_down(slurm, 'n1'):\n        pass\n\n"
              "@pytest.mark.exclusive('sets n1 down')\ndef test_marked(slurm):\n    node_down(slurm, 'n1')\n\n"
              "def test_by_hand(slurm):\n    slurm.run(['scontrol', 'update', 'nodename=n1', 'state=down'])\n")
    path = tmp_path / "test_probe.py"
    path.write_text(source)
    assert _unmarked_disruptive_tests(path) == ["test_probe.py::test_alone", "test_probe.py::test_by_hand"]
