"""Experiment declarations: rows, hashes, and errors that name the block and field."""

from __future__ import annotations

import json

import pytest
from dbsupport import block, count, get_block, two_blocks

from bridge.declaration import DeclarationError, load_experiment, load_experiment_file
from bridge.hashing import cache_path
from bridge.models import Block, CachedFile, Experiment


def test_rows_and_order(session):
    exp = load_experiment(session, two_blocks())
    assert exp.status == "P" and exp.author == "alice"
    first, second = get_block(session, exp, "first"), get_block(session, exp, "second")
    assert (first.execution_order, second.execution_order) == (0, 1)
    assert second.dependencies == [first] and first.dependents == [second]
    command = json.loads(second.command)
    assert command["inputs"]["in"]["hash"] == first.outputs[0].hash
    assert command["outputs"]["out"]["path"] == cache_path(second.outputs[0].hash)
    assert first.queue.name == "cpu" and first.environment.version == "3.11"


def test_same_block_same_hashes_across_experiments(session):
    a = load_experiment(session, two_blocks(name="a"))
    b = load_experiment(session, two_blocks(name="b", author="bob"))
    assert get_block(session, a, "second").outputs == get_block(session, b, "second").outputs
    assert count(session, CachedFile) == 2
    c = load_experiment(session, two_blocks(name="c", parameters={"x": 1}))
    assert get_block(session, c, "first").outputs[0].hash != get_block(session, a, "first").outputs[0].hash
    assert get_block(session, c, "second").outputs[0].hash != get_block(session, a, "second").outputs[0].hash


def test_environment_forms(session):
    spec = two_blocks()
    spec["blocks"]["first"]["environment"] = {"name": "python", "version": "3.11"}
    spec["blocks"]["second"]["environment"] = "python"
    exp = load_experiment(session, spec)
    assert get_block(session, exp, "second").environment.name == "python"


def _broken(**changes):
    spec = two_blocks()
    for key, value in changes.items():
        spec["blocks"]["second"][key] = value
    return spec


@pytest.mark.parametrize("spec, field", [
    (_broken(queue="nope"), "queue"),
    (_broken(environment="ruby-3"), "environment"),
    (_broken(algorithm="not an algorithm"), "algorithm"),
    (_broken(algorithm="pkg.mod"), "algorithm"),
    (_broken(dependencies=["ghost"]), "dependencies"),
    (_broken(inputs={"in": {"block": "ghost", "output": "out"}}), "inputs.in"),
    (_broken(inputs={"in": {"block": "first", "output": "nope"}}), "inputs.in"),
    (_broken(inputs={"in": {"dataset": "d", "size": 0}}), "inputs.in.size"),
    (_broken(required_slots=0), "required_slots"),
    (_broken(outputs=[]), "outputs"),
    (_broken(colour="blue"), "colour"),
])
def test_errors_name_block_and_field_and_write_nothing(session, spec, field):
    with pytest.raises(DeclarationError, match=f"block 'second', field '{field}'"):
        load_experiment(session, spec)
    session.rollback()
    assert count(session, Experiment) == 0 and count(session, Block) == 0


def test_cycle_is_an_error(session):
    spec = {"name": "e", "author": "a", "blocks": {
        "a": block(inputs={"in": {"block": "b", "output": "out"}}),
        "b": block(inputs={"in": {"block": "a", "output": "out"}}),
        "c": block(),
    }}
    with pytest.raises(DeclarationError, match=r"cycle among blocks \['a', 'b'\]"):
        load_experiment(session, spec)
    session.rollback()
    assert count(session, Experiment) == 0


def test_duplicate_experiment_and_top_level_errors(session):
    load_experiment(session, two_blocks())
    with pytest.raises(DeclarationError, match="already exists"):
        load_experiment(session, two_blocks())
    with pytest.raises(DeclarationError, match="'author'"):
        load_experiment(session, {"name": "x", "blocks": {"b": block()}})
    with pytest.raises(DeclarationError, match="unknown key"):
        load_experiment(session, {**two_blocks(name="y"), "extra": 1})


def test_queue_must_offer_the_environment(session):
    from bridge.scheduling import upsert_environment
    upsert_environment(session, "r", "4.3")
    session.commit()
    with pytest.raises(DeclarationError, match="not offered by queue cpu"):
        load_experiment(session, _broken(environment="r-4.3"))


def test_json_and_toml_files(session, tmp_path):
    (tmp_path / "e.json").write_text(json.dumps(two_blocks(name="from-json")))
    (tmp_path / "e.toml").write_text("""
name = "from-toml"
author = "carol"
[blocks.only]
algorithm = "pkg.mod:func"
queue = "cpu"
environment = "python-3.11"
required_slots = 2
outputs = ["out"]
[blocks.only.inputs.in]
dataset = "numbers"
size = 8
""")
    assert load_experiment_file(session, tmp_path / "e.json").name == "from-json"
    exp = load_experiment_file(session, tmp_path / "e.toml")
    assert exp.author == "carol" and get_block(session, exp, "only").required_slots == 2
    (tmp_path / "bad.yaml").write_text("x")
    with pytest.raises(DeclarationError, match="bad.yaml"):
        load_experiment_file(session, tmp_path / "bad.yaml")
