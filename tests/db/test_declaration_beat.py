"""Declarations naming BEAT algorithms: typed by the prefix, one clear error per mistake, BEAT-shaped commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from beat_parts import MINI_PREFIX, beat_test_prefix
from dbsupport import block, count, get_block

from bridge.cache import is_cache_complete
from bridge.declaration import DeclarationError, load_experiment
from bridge.declaration_beat import BeatSite
from bridge.hashing import cache_path
from bridge.models import Experiment


def beat_dag(first: str = "sequential/echo/1", **second_inputs: dict) -> dict:
    """left, right (echo of a BEAT cache file) -> sum (sequential/add: in1 + in2)."""
    cached = {"in": {"cache": "ab" * 32}}
    return {"name": "beat", "author": "alice", "blocks": {
        "left": block(first, inputs=cached),
        "right": block("sequential/echo/1", inputs=cached),
        "sum": block("sequential/add/1", inputs=second_inputs or {
            "in1": {"block": "left", "output": "out"}, "in2": {"block": "right", "output": "out"}}),
    }}


def write_root(root: Path, hash_: str, dataformat: str = "user/single_integer/1") -> None:
    """A file with a BEAT cache header (all the loader reads of a root)."""
    base = root / cache_path(hash_)
    base.parent.mkdir(parents=True, exist_ok=True)
    (base.parent / f"{base.name}.0.3.data").write_bytes(f"binary\n{dataformat}\n".encode())


@pytest.fixture
def site(cache_root: Path) -> BeatSite:
    write_root(cache_root, "ab" * 32)
    return BeatSite(MINI_PREFIX, cache_root)


def test_beat_blocks_get_beats_configuration(session, site):
    exp = load_experiment(session, beat_dag(), site=site)
    command = json.loads(get_block(session, exp, "sum").command)
    left = get_block(session, exp, "left")
    assert command["kind"] == "beat" and command["algorithm"] == "sequential/add/1"
    assert command["prefix"] == str(MINI_PREFIX) and command["channel"] == "main"
    assert command["parameters"] == {"sync": "in1"}  # the declaration's default, as BEAT's setup gets it
    assert command["inputs"]["in1"] == {"block": "left", "output": "out", "hash": left.outputs[0].hash,
                                        "path": cache_path(left.outputs[0].hash), "channel": "main"}
    assert set(command["outputs"]["out"]) == {"hash", "path", "channel"}
    assert json.loads(left.command)["inputs"]["in"]["path"] == cache_path("ab" * 32)


def test_same_algorithm_other_parameter_other_hash(session, site):
    a = load_experiment(session, beat_dag(), site=site)
    spec = beat_dag()
    spec["name"] = "other"
    spec["blocks"]["sum"]["parameters"] = {"sync": "in2"}
    b = load_experiment(session, spec, site=site)
    assert get_block(session, a, "left").outputs == get_block(session, b, "left").outputs
    assert get_block(session, a, "sum").outputs != get_block(session, b, "sum").outputs


@pytest.mark.parametrize("change, words", [
    (lambda d: d["blocks"]["left"].update(algorithm="sequential/nope/1"), ["'left'", "unknown BEAT algorithm",
                                                                             "sequential/add/1"]),
    (lambda d: d["blocks"]["left"].update(outputs=["other"]), ["'left'", "outputs", "['out']"]),
    (lambda d: d["blocks"]["sum"].update(parameters={"speed": 1}), ["parameters.speed", "['sync']"]),
    (lambda d: d["blocks"]["sum"]["inputs"].pop("in2"), ["'sum'", "inputs", "['in1', 'in2']"]),
    (lambda d: d["blocks"]["left"].update(algorithm="pkg.mod:f", inputs={}), ["'sum'", "inputs.in1",
                                                                               "callable block"]),
    (lambda d: d["blocks"]["left"]["inputs"].update({"in": {"cache": "cd" * 32}}), ["inputs.in.cache",
                                                                                     "no BEAT cache file"]),
    (lambda d: d["blocks"]["left"]["inputs"].update({"in": {"cache": "xyz"}}), ["inputs.in.cache", "64"]),
])
def test_mistakes_are_refused_with_one_clear_error(session, site, change, words):
    spec = beat_dag()
    change(spec)
    with pytest.raises(DeclarationError) as caught:
        load_experiment(session, spec, site=site)
    for word in words:
        assert word in str(caught.value)
    assert count(session, Experiment) == 0


def test_dataformat_mismatch_between_blocks(session, site):
    spec = beat_dag()
    images = {"dataset": "numbers", "size": 4}
    spec["blocks"]["left"] = block("sequential/valid_algorithm/1", inputs={"images": images, "labels": images},
                                   outputs=["features"])
    spec["blocks"]["sum"]["inputs"]["in1"] = {"block": "left", "output": "features"}
    with pytest.raises(DeclarationError, match="dataformat mismatch: sequential/add/1 reads user/single_integer/1, "
                       "block 'left' output 'features' is user/1d_array_of_integers/1"):
        load_experiment(session, spec, site=site)


def test_root_of_another_dataformat(session, site, cache_root):
    write_root(cache_root, "ef" * 32, "user/floats/1")
    spec = beat_dag()
    spec["blocks"]["left"]["inputs"] = {"in": {"cache": "ef" * 32}}
    with pytest.raises(DeclarationError, match="reads user/single_integer/1, cache file efef.* is user/floats/1"):
        load_experiment(session, spec, site=site)


def test_no_prefix_configured(session, cache_root):
    with pytest.raises(DeclarationError, match="block 'left', field 'algorithm'.*set beat_prefix in bridge.toml"):
        load_experiment(session, beat_dag(), site=BeatSite(None, cache_root))


def test_dataset_written_in_beats_format(session, site, cache_root):
    prefix = beat_test_prefix()
    from beat.backend.python.data import CachedDataSource

    spec = beat_dag(**{"in1": {"dataset": "squares", "size": 5}, "in2": {"dataset": "numbers", "size": 5}})
    exp = load_experiment(session, spec, site=BeatSite(prefix, cache_root))
    path = json.loads(get_block(session, exp, "sum").command)["inputs"]["in1"]["path"]
    assert is_cache_complete(path, 1, cache_root)
    source = CachedDataSource()
    assert source.setup(str(cache_root / path) + ".data", str(prefix))
    assert [(int(d.value), s, e) for d, s, e in (source[i] for i in range(len(source)))] == [
        (i * i, i, i) for i in range(5)]


def test_configuration_for_split_is_beats(session, site, cache_root):
    """get_configuration_for_split of a BEAT block: BEAT's keys, the split's range, accepted by BEAT's converter."""
    prefix = beat_test_prefix()
    from beat.backend.python.helpers import convert_experiment_configuration_to_container

    from bridge.helpers import get_configuration_for_split, schedule_experiment, split_new_jobs

    spec = beat_dag(**{"in1": {"dataset": "numbers", "size": 5}, "in2": {"dataset": "squares", "size": 5}})
    spec["blocks"]["sum"]["required_slots"] = 2
    exp = load_experiment(session, spec, site=BeatSite(prefix, cache_root))
    schedule_experiment(session, exp)
    split_new_jobs(session, str(cache_root))
    splits = sorted(get_block(session, exp, "sum").job.splits, key=lambda s: s.split_index)
    configurations = [get_configuration_for_split(s, str(cache_root)) for s in splits]
    assert [c["range"] for c in configurations] == [[0, 2], [3, 4]]
    first = configurations[0]
    assert first["kind"] == "beat" and first["nb_slots"] == 2
    assert first["environment"] == {"name": "python", "version": "3.11"}
    for entry in (*first["inputs"].values(), *first["outputs"].values()):
        assert {"path", "channel", "hash"} <= set(entry) and entry["path"] == cache_path(entry["hash"])
    container = convert_experiment_configuration_to_container(
        {k: first[k] for k in ("algorithm", "channel", "parameters", "inputs", "outputs", "range")})
    assert container["range"] == [0, 2] and container["inputs"]["in1"] == {
        "channel": "main", "path": first["inputs"]["in1"]["path"]}
