"""The array element on a BEAT block: beat.backend.python's executor over the split's range, BEAT's own files out.

Inputs are written with BEAT's CachedDataSink, the element runs as a subprocess on
a manifest in BEAT's configuration shape, and every output is read back with BEAT's
CachedDataSource; bridge.cache.is_cache_complete is checked on the files BEAT wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from beat_parts import beat_test_prefix

from bridge.cache import is_cache_complete, read_index
from bridge.hashing import cache_path, sha256_json

TAG = "bb-test-beat"
INT = "user/single_integer/1"


def write_beat(root: Path, path: str, prefix: Path, values: list[int]) -> None:
    """A BEAT cache file of single integers, one data block per unit (as a database view writes it)."""
    from beat.backend.python.data import CachedDataSink
    from beat.backend.python.dataformat import DataFormat

    form = DataFormat(str(prefix), INT)
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    sink = CachedDataSink()
    assert sink.setup(str(root / path) + ".data", form, 0, len(values) - 1)
    for i, value in enumerate(values):
        unit = form.type()
        unit.from_dict({"value": value}, casting="unsafe")
        sink.write(unit, i, i)
    sink.close()


def read_beat(root: Path, path: str, prefix: Path) -> list[tuple[int, int, int]]:
    from beat.backend.python.data import CachedDataSource

    source = CachedDataSource()
    assert source.setup(str(root / path) + ".data", str(prefix))
    return [(int(d.value), s, e) for d, s, e in (source[i] for i in range(len(source)))]


class BeatSpool:
    def __init__(self, tmp_path: Path) -> None:
        self.prefix = beat_test_prefix()
        self.cache, self.spool = tmp_path / "cache", tmp_path / "spool" / TAG
        self.cache.mkdir()
        self.spool.mkdir(parents=True)

    def path(self, name: str) -> str:
        return cache_path(sha256_json({"test": name}))

    def manifest(self, algorithm: str, inputs: dict[str, str], ranges: list[list[int] | None],
                 parameters: dict[str, Any] | None = None) -> str:
        """One array over `ranges` of a block reading `inputs` (name -> cache path); its output's path."""
        from bridge.sbatch_scripts.manifest import write_manifest

        out = self.path(algorithm + json.dumps(inputs))
        shared = {
            "kind": "beat", "algorithm": algorithm, "prefix": str(self.prefix), "channel": "main",
            "parameters": parameters or {}, "experiment": "e", "author": "alice", "block": "b", "nb_slots": 2,
            "inputs": {n: {"path": p, "channel": "main", "hash": p.replace("/", "")} for n, p in inputs.items()},
            "outputs": {"out": {"path": out, "channel": "main", "hash": out.replace("/", "")}},
            "environment": {"name": "python", "version": "3.11"}, "nb_splits": len(ranges), "job_id": 1,
        }
        entries = {i: {"range": r, "split_index": i, "split_id": 10 + i} for i, r in enumerate(ranges)}
        write_manifest(self.spool, TAG, self.cache, 0, shared, entries)
        return out

    def run(self, index: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(self.spool),
                               "--index", str(index)], capture_output=True, text=True, timeout=120,
                              env={k: v for k, v in os.environ.items() if k != "BEAT_SUBMISSION_TAG"})

    def result(self, index: int) -> dict[str, Any]:
        return json.loads((self.spool / f"split-{index}.result.json").read_text())


@pytest.fixture
def beat(tmp_path: Path) -> BeatSpool:
    return BeatSpool(tmp_path)


def test_sequential_add_in_two_splits_writes_beats_files(beat):
    left, right = beat.path("left"), beat.path("right")
    write_beat(beat.cache, left, beat.prefix, [10 * i for i in range(6)])
    write_beat(beat.cache, right, beat.prefix, [i for i in range(6)])
    out = beat.manifest("sequential/add/1", {"in1": left, "in2": right}, [[0, 2], [3, 5]], {"sync": "in1"})
    for index in (0, 1):
        done = beat.run(index)
        assert done.returncode == 0, done.stderr
    assert read_beat(beat.cache, out, beat.prefix) == [(11 * i, i, i) for i in range(6)]
    assert is_cache_complete(out, 2, beat.cache) and read_index(out, beat.cache) == [(i, i) for i in range(6)]
    result = beat.result(1)
    assert result["status"] == 0 and result["user_error"] is None and result["system_error"] is None
    data = result["statistics"]["data"]
    assert data["blocks"] == {"read": 6, "write": 3}  # BEAT's counts: two inputs x 3 units read, 3 written
    assert data["volume"]["write"] == data["written"] > 0 and data["volume"]["read"] == data["read"] > 0
    assert data["files"][0]["hash"] == out.replace("/", "")
    assert result["statistics"]["cpu"]["user"] > 0 and result["statistics"]["memory"]["rss"] > 0


@pytest.mark.parametrize("algorithm", ["autonomous/echo/1", "legacy/echo/1"])
def test_other_apis_run_whole(beat, algorithm):
    source = beat.path("source")
    write_beat(beat.cache, source, beat.prefix, [7, 8, 9])
    out = beat.manifest(algorithm, {"in": source}, [None])
    done = beat.run(0)
    assert done.returncode == 0, done.stderr
    assert read_beat(beat.cache, out, beat.prefix) == [(7, 0, 0), (8, 1, 1), (9, 2, 2)]
    assert is_cache_complete(out, 1, beat.cache)


def test_crash_is_the_algorithms_error_in_beats_words(beat):
    source = beat.path("source")
    write_beat(beat.cache, source, beat.prefix, [1, 2])
    out = beat.manifest("sequential/process_crash/1", {"in": source}, [None])
    done = beat.run(0)
    assert done.returncode == 1, done.stderr
    result = beat.result(0)
    assert result["status"] == 1 and result["system_error"] is None
    assert "sequential/process_crash/1.py" in result["user_error"] and "NameError: name 'b'" in result["user_error"]
    assert not is_cache_complete(out, 1, beat.cache)


def test_missing_input_is_a_system_error(beat):
    out = beat.manifest("sequential/echo/1", {"in": beat.path("never written")}, [None])
    done = beat.run(0)
    assert done.returncode == 2, done.stderr
    result = beat.result(0)
    assert result["user_error"] is None and "cannot load cache file" in result["system_error"]
    assert not is_cache_complete(out, 1, beat.cache)


def test_tampered_beat_file_is_not_complete(beat):
    source = beat.path("source")
    write_beat(beat.cache, source, beat.prefix, [1, 2, 3])
    assert is_cache_complete(source, 1, beat.cache)
    data = next((beat.cache / source).parent.glob("*.data"))
    data.write_bytes(data.read_bytes()[:-1] + b"\x01")
    assert not is_cache_complete(source, 1, beat.cache)


def test_no_beat_on_the_node_is_a_system_error_naming_the_extra(beat, tmp_path):
    """A node without beat.backend.python: the element says what to install (a `beat` that fails to import)."""
    source = beat.path("source")
    write_beat(beat.cache, source, beat.prefix, [1])
    beat.manifest("sequential/echo/1", {"in": source}, [None])
    fake = tmp_path / "no-beat"
    (fake / "beat").mkdir(parents=True)
    (fake / "beat" / "__init__.py").write_text("raise ImportError('no beat on this node')\n")
    path = os.pathsep.join(p for p in (str(fake), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(beat.spool),
                           "--index", "0"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": path})
    assert done.returncode == 2, done.stderr
    error = beat.result(0)["system_error"]
    assert "beat.backend.python is not installed" in error and "beat-slurm-bridge[beat]" in error


SLEEPY = '''
import os
import time


class Algorithm:
    def setup(self, parameters):
        self.marker = parameters["marker"]
        return True

    def process(self, inputs, data_loaders, outputs):
        with open(self.marker, "w") as stream:
            stream.write(str(os.getpid()))
        time.sleep(60)
        return True
'''


def test_sigterm_kills_the_beat_process_and_writes_a_result(beat, tmp_path):
    """scancel: the element's SIGTERM ends BEAT's executor process too (no orphan on the node), no output."""
    import shutil
    import signal
    import time

    prefix = tmp_path / "prefix"
    shutil.copytree(beat.prefix / "dataformats" / "user" / "single_integer", prefix / "dataformats" / "user" /
                    "single_integer")
    declaration = json.loads((beat.prefix / "algorithms" / "sequential" / "echo" / "1.json").read_text())
    declaration["parameters"] = {"marker": {"type": "string", "default": ""}}
    (prefix / "algorithms" / "test" / "sleepy").mkdir(parents=True)
    (prefix / "algorithms" / "test" / "sleepy" / "1.json").write_text(json.dumps(declaration))
    (prefix / "algorithms" / "test" / "sleepy" / "1.py").write_text(SLEEPY)
    beat.prefix = prefix
    source, marker = beat.path("source"), tmp_path / "pid"
    write_beat(beat.cache, source, prefix, [1])
    out = beat.manifest("test/sleepy/1", {"in": source}, [None], {"marker": str(marker)})
    process = subprocess.Popen([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(beat.spool),
                                "--index", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert "SIGTERM" in beat.result(0)["system_error"]
    with pytest.raises(ProcessLookupError):
        os.kill(int(marker.read_text()), 0)
    assert not is_cache_complete(out, 1, beat.cache)
