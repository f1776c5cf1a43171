"""The array element as a real subprocess: spool file in, cache files and result JSON out.

Each test writes the array's ``manifest.jsonl`` with the bridge's own writer
(bridge.sbatch_scripts.manifest) in a temporary spool directory and runs
``python -m bridge.sbatch_scripts.element --spool DIR --index N``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.cache import is_cache_complete, read_index
from bridge.hashing import cache_path, sha256_json

ALGORITHMS = "bridge.examples.algorithms"
TAG = "bb-test-tag"
ELEMENT = Path(__file__).resolve().parent.parent / "sbatch_scripts" / "element.py"

# Test-only algorithms, importable from a module the tests put on PYTHONPATH.
MY_ALGOS = '''
import sys

def chatty(inputs, parameters, context):
    print("x" * 200_000)
    print("to stderr", file=sys.stderr)
    return {context.outputs[0]: [0] * (context.end - context.start + 1)}

def exits(inputs, parameters, context):
    sys.exit(3)

def not_json(inputs, parameters, context):
    return {context.outputs[0]: [object()] * (context.end - context.start + 1)}

def wrong_length(inputs, parameters, context):
    return {context.outputs[0]: [1]}

def wrong_name(inputs, parameters, context):
    return {"other": [1]}

def show_context(inputs, parameters, context):
    print(context)
    return {name: [len(inputs)] for name in context.outputs}
'''


class Setup:
    """A spool directory and a cache root in tmp_path, and a way to run elements on them."""

    def __init__(self, tmp_path: Path) -> None:
        self.spool = tmp_path / "spool" / TAG
        self.cache = tmp_path / "cache"
        self.spool.mkdir(parents=True)
        self.cache.mkdir()
        self.algos = tmp_path / "algos"
        self.algos.mkdir()
        (self.algos / "myalgos.py").write_text(MY_ALGOS)
        (self.algos / "broken_algos.py").write_text("raise ImportError('no such dependency')\n")
        self.entries: dict[int, dict[str, Any]] = {}
        self.shared: dict[str, Any] = {}

    def write_split(self, index: int, *, algorithm: str, inputs: dict[str, Any], outputs: list[str],
                    span: list[int] | None, nb_splits: int = 1, parameters: dict[str, Any] | None = None,
                    block: str = "b") -> dict[str, str]:
        """Add array index `index` to the manifest, whose shared part becomes this split's; returns each
        output's cache path."""
        paths = {o: cache_path(sha256_json({"block": block, "output": o})) for o in outputs}
        configuration = {
            "experiment": "exp", "author": "alice", "block": block, "algorithm": algorithm,
            "parameters": parameters or {}, "inputs": inputs,
            "outputs": {o: {"hash": p.replace("/", ""), "path": p} for o, p in paths.items()},
            "range": span, "split_index": index, "nb_splits": nb_splits,
            "split_id": 100 + index, "job_id": 7, "block_id": 3,
        }
        self.entries[index] = {key: configuration.pop(key) for key in ("range", "split_index", "split_id")}
        self.shared = configuration
        self.write_manifest()
        return paths

    def write_manifest(self, offset: int = 0) -> None:
        from bridge.sbatch_scripts.manifest import write_manifest

        write_manifest(self.spool, TAG, self.cache, offset, self.shared, self.entries)

    def run(self, index: int, *, as_path: bool = False, env: dict[str, str] | None = None,
            spool: Path | None = None) -> subprocess.CompletedProcess[str]:
        runner = [str(ELEMENT)] if as_path else ["-m", "bridge.sbatch_scripts.element"]
        environment = {k: v for k, v in os.environ.items() if k != "BEAT_SUBMISSION_TAG"}
        # the checkout under test stays first on the path (a worktree's PYTHONPATH), then the test algorithms
        path = [p for p in (os.environ.get("PYTHONPATH"), str(self.algos)) if p]
        environment.update(PYTHONPATH=os.pathsep.join(path), **(env or {}))
        return subprocess.run(
            [sys.executable, *runner, "--spool", str(spool or self.spool), "--index", str(index)],
            capture_output=True, text=True, timeout=60, env=environment,
        )

    def result(self, index: int) -> dict[str, Any]:
        return json.loads((self.spool / f"split-{index}.result.json").read_text())

    def values(self, path: str) -> dict[int, Any]:
        """Every unit of a cached file, from all its .data files."""
        units = {}
        base = self.cache / path
        for file in base.parent.glob(base.name + ".*.data"):
            for line in file.read_text().splitlines():
                record = json.loads(line)
                units[record["index"]] = record["value"]
        return units


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def numbers(size: int) -> dict[str, Any]:
    return {"dataset": "numbers", "size": size, "hash": "h", "path": "p"}


def upstream(path: str) -> dict[str, Any]:
    return {"block": "up", "output": "out", "hash": path.replace("/", ""), "path": path}


def make_numbers_times_3(setup: Setup, size: int = 10) -> str:
    """Run a 2-split scale block on numbers(size); returns its output's cache path."""
    half = size // 2
    for index, span in enumerate(([0, half - 1], [half, size - 1])):
        paths = setup.write_split(index, algorithm=f"{ALGORITHMS}:scale", inputs={"in": numbers(size)},
                                  outputs=["out"], span=span, nb_splits=2, parameters={"factor": 3},
                                  block="up")
        done = setup.run(index)
        assert done.returncode == 0, done.stderr
    return paths["out"]


# --- success ------------------------------------------------------------------------------


def test_dataset_block_in_two_splits_writes_a_verified_cache(setup):
    path = make_numbers_times_3(setup)

    assert is_cache_complete(path, 2, setup.cache)
    assert read_index(path, setup.cache) == [(i, i) for i in range(10)]
    assert setup.values(path) == {i: 3 * i for i in range(10)}
    for index in (0, 1):
        result = setup.result(index)
        assert result["status"] == 0 and result["user_error"] is None and result["system_error"] is None
        assert result["timed_out"] is False
        statistics = result["statistics"]
        assert statistics["cpu"]["user"] > 0 and statistics["cpu"]["system"] >= 0
        assert statistics["memory"]["rss"] > 1_000_000  # bytes, not kilobytes
        assert statistics["data"] == {"read": 0, "written": statistics["data"]["written"]}
        assert statistics["data"]["written"] > 0
    assert not list(setup.cache.rglob(".*.tmp")), "no temporary file is left behind"


def test_one_split_alone_is_not_a_complete_cache(setup):
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(10)},
                              outputs=["out"], span=[0, 4], nb_splits=2)
    assert setup.run(0).returncode == 0
    assert not is_cache_complete(paths["out"], 2, setup.cache)
    assert is_cache_complete(paths["out"], 1, setup.cache)  # one file, contiguous from 0


def test_block_input_is_read_over_the_range_across_upstream_files(setup):
    up = make_numbers_times_3(setup)  # files [0, 4] and [5, 9]
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": upstream(up)},
                              outputs=["sq"], span=[3, 6], nb_splits=3, block="down")

    done = setup.run(0)

    assert done.returncode == 0, done.stderr
    assert setup.values(paths["sq"]) == {i: (3 * i) ** 2 for i in range(3, 7)}
    assert read_index(paths["sq"], setup.cache) == [(i, i) for i in range(3, 7)]
    assert setup.result(0)["statistics"]["data"]["read"] > 0


def test_unsplit_reducer_reads_the_whole_input_and_captures_stdout(setup):
    up = make_numbers_times_3(setup)
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:total", inputs={"in": upstream(up)},
                              outputs=["total"], span=None, block="sum")

    done = setup.run(0)

    assert done.returncode == 0, done.stderr
    assert setup.values(paths["total"]) == {0: 3 * sum(range(10))}
    assert is_cache_complete(paths["total"], 1, setup.cache)
    result = setup.result(0)
    assert result["stdout"] == "total of 10 values\n"
    assert "done in" in done.stdout and "total of" not in done.stdout


def test_diamond_join_adds_a_dataset_and_a_block_output(setup):
    up = make_numbers_times_3(setup)
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:add",
                              inputs={"a": upstream(up), "b": numbers(10)},
                              outputs=["sum"], span=[0, 9], block="join")
    assert setup.run(0).returncode == 0
    assert setup.values(paths["sum"]) == {i: 4 * i for i in range(10)}


def test_runs_as_a_path_too(setup):
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(3)},
                              outputs=["out"], span=None)
    done = setup.run(0, as_path=True)
    assert done.returncode == 0, done.stderr
    assert setup.values(paths["out"]) == {0: 0, 1: 1, 2: 4}


def test_context_and_several_outputs(setup):
    paths = setup.write_split(1, algorithm="myalgos:show_context",
                              inputs={"x": numbers(4), "y": numbers(4)}, outputs=["o1", "o2"],
                              span=None, nb_splits=2)
    assert setup.run(1).returncode == 0
    assert setup.values(paths["o1"]) == setup.values(paths["o2"]) == {0: 2}
    stdout = setup.result(1)["stdout"]
    assert "block='b'" in stdout and "outputs=('o1', 'o2')" in stdout and "split_index=1" in stdout


def test_array_index_may_be_offset_from_the_split_index(setup):
    """A job of more than MaxArraySize splits goes out in several arrays: index = split - offset."""
    paths = setup.write_split(3, algorithm="myalgos:show_context", inputs={"x": numbers(2000)},
                              outputs=["o"], span=[1500, 1500], nb_splits=2000)
    setup.entries[3]["split_index"] = 1003
    setup.write_manifest(offset=1000)

    assert setup.run(3).returncode == 0
    assert "split_index=1003" in setup.result(3)["stdout"]
    assert setup.values(paths["o"]) == {1500: 1}


def test_matching_submission_tag_is_accepted(setup):
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(2)},
                      outputs=["out"], span=None)
    assert setup.run(0, env={"BEAT_SUBMISSION_TAG": TAG}).returncode == 0


# --- user errors --------------------------------------------------------------------------


def test_algorithm_exception_is_a_user_error_with_traceback(setup):
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:fail_always", inputs={"in": numbers(4)},
                              outputs=["out"], span=[0, 3], parameters={"message": "bad things"})

    done = setup.run(0)

    assert done.returncode == 1
    result = setup.result(0)
    assert result["status"] == 1 and result["system_error"] is None
    assert "Traceback" in result["user_error"] and "RuntimeError: bad things" in result["user_error"]
    assert "element.py" not in result["user_error"]  # the element's own frame is left out
    assert result["stderr"] == "fail_always: about to fail\n"
    assert "user error" in done.stderr and "bad things" in done.stderr
    assert not (setup.cache / paths["out"]).parent.exists()


@pytest.mark.parametrize("function, words", [
    ("wrong_length", "1 values for the 4 units"),
    ("wrong_name", "returned outputs ['other']"),
    ("not_json", "cannot be stored as JSON"),
    ("exits", "SystemExit: 3"),
])
def test_outputs_that_do_not_fit_are_user_errors(setup, function, words):
    setup.write_split(0, algorithm=f"myalgos:{function}", inputs={"in": numbers(8)},
                      outputs=["out"], span=[4, 7])
    done = setup.run(0)
    assert done.returncode == 1, done.stderr
    assert words in setup.result(0)["user_error"]
    assert not list(setup.cache.rglob("*.data"))


def test_large_output_is_truncated_in_the_result(setup):
    setup.write_split(0, algorithm="myalgos:chatty", inputs={}, outputs=["out"], span=[0, 1])
    assert setup.run(0).returncode == 0
    result = setup.result(0)
    assert len(result["stdout"]) < 70_000 and "bytes truncated" in result["stdout"]
    assert result["stderr"] == "to stderr\n"


# --- system errors ------------------------------------------------------------------------


def _system_error(setup: Setup, index: int = 0) -> str:
    done = setup.run(index)
    assert done.returncode == 2, (done.stdout, done.stderr)
    result = setup.result(index)
    assert result["status"] == 1 and result["user_error"] is None
    assert "system error" in done.stderr
    return result["system_error"]


def test_missing_spool_file(setup):
    assert "no manifest" in _system_error(setup, 5)


def test_an_index_the_manifest_has_no_entry_for_is_a_system_error(setup):
    for index in (0, 2):
        setup.write_split(index, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(2)}, outputs=["out"],
                          span=None)
    assert "no entry for array index 5" in _system_error(setup, 5)  # past the last
    assert "no entry for array index 1" in _system_error(setup, 1)  # a gap: its line is blank


def test_an_entry_that_is_not_the_elements_own_is_refused(setup):
    """Entry N must be split N + offset: an entry filed under the wrong index never runs another split."""
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(4)}, outputs=["out"], span=[0, 1])
    setup.entries[1] = dict(setup.entries[0])  # split 0's entry filed under index 1
    setup.write_manifest()
    assert "the entry of array index 1 is split 0" in _system_error(setup, 1)
    assert not list(setup.cache.rglob("*.data"))


def test_each_index_runs_its_own_entry_of_one_manifest(setup):
    """Three elements of one array read one manifest: each computes its own range and nothing else."""
    paths = {}
    for index, span in enumerate(([0, 2], [3, 5], [6, 7])):
        paths = setup.write_split(index, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(8)},
                                  outputs=["out"], span=span, nb_splits=3)
    assert [p.name for p in setup.spool.iterdir()] == ["manifest.jsonl"]  # one manifest, no file per split
    for index, now in ((2, [6, 7]), (0, [0, 1, 2, 6, 7]), (1, range(8))):
        assert setup.run(index).returncode == 0
        assert setup.values(paths["out"]) == {i: i * i for i in now}
        assert setup.result(index)["status"] == 0
    assert is_cache_complete(paths["out"], 3, setup.cache)


def test_an_array_spooled_before_manifests_still_runs_from_its_split_file(setup):
    """Elements of arrays submitted by an older bridge (split-N.json, no manifest) still run after an upgrade."""
    paths = setup.write_split(2, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(3)},
                              outputs=["out"], span=[1, 2])
    configuration = {**setup.shared, **setup.entries[2]}
    (setup.spool / "manifest.jsonl").unlink()
    (setup.spool / "split-2.json").write_text(json.dumps(
        {"configuration": configuration, "cache_root": str(setup.cache), "submission_tag": TAG}))
    assert setup.run(2, env={"BEAT_SUBMISSION_TAG": TAG}).returncode == 0
    assert setup.values(paths["out"]) == {1: 1, 2: 4}


def test_missing_spool_directory_still_exits_2(setup, tmp_path):
    done = setup.run(0, spool=tmp_path / "nowhere")
    assert done.returncode == 2
    assert "cannot write result" in done.stderr and "no manifest" in done.stderr


def test_bad_spool_files(setup):
    (setup.spool / "manifest.jsonl").write_text("{not json\n")
    assert "cannot read manifest" in _system_error(setup)
    (setup.spool / "manifest.jsonl").write_text('{"format": 1, "configuration": {}}\n')
    assert "expected a format 1 manifest header" in _system_error(setup)
    setup.write_split(0, algorithm="nocolon", inputs={}, outputs=[], span=[3, 1])
    message = _system_error(setup)
    assert "'algorithm' must be" in message and "'outputs' must" in message and "'range' must" in message




def test_other_submission_tag_is_refused(setup):
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(2)},
                      outputs=["out"], span=None)
    done = setup.run(0, env={"BEAT_SUBMISSION_TAG": "another-tag"})
    assert done.returncode == 2
    assert "is not this array's 'another-tag'" in setup.result(0)["system_error"]


@pytest.mark.parametrize("algorithm, words", [
    ("no_such_package.algos:f", "cannot import algorithm module 'no_such_package.algos'"),
    ("broken_algos:f", "ImportError: no such dependency"),
    (f"{ALGORITHMS}:no_such_function", "has no function 'no_such_function'"),
])
def test_unimportable_algorithm(setup, algorithm, words):
    setup.write_split(0, algorithm=algorithm, inputs={"in": numbers(2)}, outputs=["out"], span=None)
    assert words in _system_error(setup)


def test_unknown_dataset_names_the_valid_ones(setup):
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square",
                      inputs={"in": {"dataset": "nope", "size": 3}}, outputs=["out"], span=None)
    message = _system_error(setup)
    assert "unknown dataset 'nope'" in message and "numbers" in message and "words" in message


def test_range_beyond_the_dataset(setup):
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": numbers(3)},
                      outputs=["out"], span=[2, 5])
    assert "outside dataset 'numbers' of size 3" in _system_error(setup)


def test_missing_upstream_units(setup):
    up = make_numbers_times_3(setup)
    setup.write_split(2, algorithm=f"{ALGORITHMS}:square", inputs={"in": upstream(up)},
                      outputs=["out"], span=[8, 12], block="down")
    message = _system_error(setup, 2)
    assert "input 'in'" in message and "not in the cache (first missing: 10)" in message


def test_upstream_never_written(setup):
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": upstream("aa/bb/cc/dd")},
                      outputs=["out"], span=None)
    assert "no cached data" in _system_error(setup)


def test_corrupt_upstream_is_refused(setup):
    up = make_numbers_times_3(setup)
    data = next((setup.cache / up).parent.glob("*.5.9.data"))
    data.write_text(data.read_text().replace('"value":15', '"value":16'))
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": upstream(up)},
                      outputs=["out"], span=[5, 9], block="down")
    assert "checksum mismatch" in _system_error(setup)


def test_path_leaving_the_cache_root_is_refused(setup):
    setup.write_split(0, algorithm=f"{ALGORITHMS}:square", inputs={"in": upstream("../../etc")},
                      outputs=["out"], span=None)
    assert "bad cache path" in _system_error(setup)


# --- termination --------------------------------------------------------------------------


def test_sigterm_writes_a_result_and_no_output(setup):
    paths = setup.write_split(0, algorithm=f"{ALGORITHMS}:sleep_then_copy", inputs={"in": numbers(2)},
                              outputs=["out"], span=None, parameters={"seconds": 30})
    environment = {**os.environ, "PYTHONPATH": str(setup.algos)}
    environment.pop("BEAT_SUBMISSION_TAG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(setup.spool), "--index", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    time.sleep(1.0)  # imports take ~0.1 s; then it sleeps in the algorithm
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)

    assert process.returncode == 143, stderr
    result = setup.result(0)
    assert result["status"] == 1 and "SIGTERM" in result["system_error"]
    assert not (setup.cache / paths["out"]).parent.exists()


def test_module_docstring_documents_the_contract():
    from bridge.sbatch_scripts import element

    doc = textwrap.dedent(element.__doc__ or "")
    for words in ("manifest.jsonl", "split-N.result.json", "Exit codes", "function(inputs, parameters, context)"):
        assert words in doc


# --- pure parts of element_io ---------------------------------------------------------------


def test_encode_is_canonical_json_lines_with_one_index_line_per_unit():
    from bridge.sbatch_scripts.element_io import encode

    data, index = encode([{"b": 1, "a": [2]}, "x"], start=7)
    assert data == b'{"index":7,"value":{"a":[2],"b":1}}\n{"index":8,"value":"x"}\n'
    assert index == b"7 7\n8 8\n"


def test_datasets_module_missing_is_a_system_error(monkeypatch, tmp_path):
    from bridge.sbatch_scripts.element_io import ElementSystemError, IOStats, read_inputs

    monkeypatch.setitem(sys.modules, "bridge.examples.datasets", None)
    with pytest.raises(ElementSystemError, match="input 'in': generated datasets are not installed"):
        read_inputs({"in": numbers(3)}, tmp_path, None, IOStats())


# --- the spool helpers for the bridge's side ---------------------------------------------


def test_spool_helpers_round_trip_through_a_real_element(tmp_path):
    from bridge.sbatch_scripts.manifest import write_manifest
    from bridge.sbatch_scripts.spool import array_spool_dir, read_result

    spool = array_spool_dir(tmp_path / "spool", TAG)
    path = cache_path(sha256_json({"round": "trip"}))
    shared = {"algorithm": f"{ALGORITHMS}:square", "inputs": {"in": numbers(3)}, "outputs": {"out": {"path": path}}}
    write_manifest(spool, TAG, tmp_path / "cache", 1000, shared,
                   {4: {"range": None, "split_index": 1004, "split_id": 9}})
    assert [p.name for p in spool.iterdir()] == ["manifest.jsonl"]  # written atomically: no temporary left
    assert read_result(spool, 4) is None

    done = subprocess.run([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(spool),
                           "--index", "4"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BEAT_SUBMISSION_TAG": TAG})

    assert done.returncode == 0, done.stderr
    assert read_result(spool, 4)["status"] == 0
    assert is_cache_complete(path, 1, tmp_path / "cache")


def test_read_result_of_a_damaged_file_is_a_system_error(tmp_path):
    from bridge.sbatch_scripts.spool import array_spool_dir, read_result, result_file

    (tmp_path / "split-0.result.json").write_text('{"status": 0')
    assert "is not JSON" in read_result(tmp_path, 0)["system_error"]
    result_file(tmp_path, 1).write_text("[]")
    assert read_result(tmp_path, 1)["status"] == 1
    for tag in ("", "a/b", ".."):
        with pytest.raises(ValueError):
            array_spool_dir(tmp_path, tag)
