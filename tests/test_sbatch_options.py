"""The one clash rule for extra directives: every spelling sbatch reads as an option the bridge sets."""

from __future__ import annotations

import pytest

from bridge.errors import ConfigError
from bridge.queues_config import load_queues
from bridge.render import UnsafeValueError, extra_options
from bridge.sbatch_options import BRIDGE_OPTIONS, clash, clashing_names, directive_problem


@pytest.mark.parametrize(
    ("name", "sets"),
    [("partition", "--partition"), ("mem-per-cpu", "--mem (--mem-per-cpu"), ("mem-per-gpu", "--mem ("),
     ("part", "--partition (sbatch reads a unique prefix"), ("cpus", "--cpus-per-task"), ("parsable", "--parsable"),
     ("wait", "--wait"), ("test-only", "--test-only"), ("wrap", "--wrap"), ("requeue", "--no-requeue"),
     ("job", "--job-name"), ("out", "--output")],
)
def test_every_spelling_of_a_bridge_option_clashes(name: str, sets: str) -> None:
    assert (clash(name, BRIDGE_OPTIONS) or "").startswith(sets)


@pytest.mark.parametrize("name", ["nice", "constraint", "hold", "begin", "time-min", "exclusive", "wait-all-nodes"])
def test_options_the_bridge_leaves_free_do_not_clash(name: str) -> None:
    assert clash(name, BRIDGE_OPTIONS) is None


def test_account_and_qos_clash_only_when_the_queue_sets_them() -> None:
    assert clash("account", BRIDGE_OPTIONS) is None
    assert clash("account", BRIDGE_OPTIONS | {"account"}) == "--account"
    assert clash("acc", BRIDGE_OPTIONS | {"account"}) is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-t 10", "-t is sbatch's short form of --time: it conflicts with --time"),
     ("-p debug", "short form of --partition: it conflicts"), ("-c4", "--cpus-per-task"), ("-a 0-3", "--array"),
     ("-J x", "--job-name"), ("-o x", "--output"), ("-e x", "--error"), ("-W", "--wait"),
     ("-N 1", "write --nodes=..."), ("--nodes=1", None)],
)
def test_short_forms_are_named(text: str, expected: str | None) -> None:
    problem = directive_problem(text)
    assert problem is None if expected is None else expected in (problem or "")


def test_the_renderer_refuses_an_alias_and_keeps_a_free_option() -> None:
    with pytest.raises(UnsafeValueError, match=r"'--mem-per-cpu=100' conflicts with --mem"):
        extra_options(["--nice=5", "--mem-per-cpu=100"])
    assert extra_options(["--nice=5", "--hold"]) == {"nice": "5", "hold": None}


@pytest.mark.parametrize(
    ("directive", "expected"),
    [("--time-min=5", None), ("--ti=5", "conflicts with --time"), ("-t 5", "short form of --time"),
     ("--mem-per-gpu=1G", "conflicts with --mem")],
)
def test_the_loader_applies_the_same_rule(tmp_path, directive: str, expected: str | None) -> None:
    path = tmp_path / "queues.toml"
    path.write_text(f'[queues.q]\npartition = "cpu"\nmemory_limit = 100\ntime_limit = 5\ncores_per_slot = 1\n'
                    f'max_slots_per_user = 1\nextra_directives = ["{directive}"]\n')
    if expected is None:
        assert load_queues(path)["q"].extra_directives == (directive,)
        return
    with pytest.raises(ConfigError, match=expected) as error:
        load_queues(path)
    assert "queues.q.extra_directives" in str(error.value)
    errors: dict[str, ConfigError] = {}
    assert load_queues(path, errors=errors) == {} and "queues.q.extra_directives" in str(errors["q"])


def test_clashing_names_are_the_names_clash_refuses() -> None:
    """The finite set the JSON Schema lists (bridge.schema) is the rule, not a copy of it."""
    taken = BRIDGE_OPTIONS | {"qos"}
    names = clashing_names(taken)
    around = names | {n + more for n in names for more in ("x", "-x")} | {"nice", "account", "qosx"}
    assert {n for n in around if clash(n, taken) is not None} == names
    assert {"p", "part", "partition", "mem-per-gpu", "q", "qos", "wrap"} <= names and "account" not in names
