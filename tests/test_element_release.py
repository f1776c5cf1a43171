"""An element of a job with dependents waits, after success, for the bridge's release (bridge.handover).

The element runs as a real subprocess on a manifest written by the bridge's own
writer; the assertions are on order (alive while the result is there and no
release, ended once released) and on what it says, never on durations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.hashing import cache_path, sha256_json
from bridge.sbatch_scripts.manifest import ManifestError, read_element, write_manifest
from bridge.sbatch_scripts.spool import release_file, result_file

TAG = "bb-release-test"


def write_array(tmp_path: Path, linger: float, algorithm: str = "bridge.examples.algorithms:square") -> Path:
    """A one-element array squaring numbers 0..3, whose manifest says `linger`; its spool directory."""
    spool, cache = tmp_path / "spool" / TAG, tmp_path / "cache"
    cache.mkdir(parents=True)
    path = cache_path(sha256_json({"block": "a", "output": "out"}))
    shared = {"experiment": "exp", "author": "alice", "block": "a", "algorithm": algorithm, "parameters": {},
              "inputs": {"in": {"dataset": "numbers", "size": 4, "hash": "h", "path": "p"}},
              "outputs": {"out": {"hash": path.replace("/", ""), "path": path}},
              "nb_splits": 1, "job_id": 7, "block_id": 3}
    write_manifest(spool, TAG, cache, 0, shared, {0: {"range": [0, 3], "split_index": 0, "split_id": 100}},
                   linger=linger)
    return spool


def start(spool: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(spool),
                             "--index", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "BEAT_SUBMISSION_TAG"})


def wait_for(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.01)


def test_after_success_it_stays_until_released(tmp_path):
    spool = write_array(tmp_path, linger=60)
    element = start(spool)
    try:
        wait_for("result file", result_file(spool, 0).exists)
        assert json.loads(result_file(spool, 0).read_text())["status"] == 0
        time.sleep(0.2)
        assert element.poll() is None, element.communicate()  # its result is written, and it still runs
        release_file(spool, 0).touch()
        out, err = element.communicate(timeout=30)
    finally:
        element.kill()
    assert element.returncode == 0, err
    assert "released after" in out.splitlines()[-1], out


def test_without_a_release_it_ends_after_linger_and_says_so(tmp_path):
    spool = write_array(tmp_path, linger=0.3)
    done = subprocess.run([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(spool),
                           "--index", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "not released within 0.3 s, ending anyway" in done.stdout.splitlines()[-1], done.stdout
    assert not release_file(spool, 0).exists()


def test_a_failed_element_does_not_wait(tmp_path):
    spool = write_array(tmp_path, linger=60, algorithm="bridge.examples.algorithms:fail_always")
    done = subprocess.run([sys.executable, "-m", "bridge.sbatch_scripts.element", "--spool", str(spool),
                           "--index", "0"], capture_output=True, text=True, timeout=30)  # far less than 60 s
    assert done.returncode == 1 and "released" not in done.stdout + done.stderr
    assert json.loads(result_file(spool, 0).read_text())["status"] == 1


def test_the_manifest_carries_linger_only_when_asked(tmp_path):
    assert read_element(write_array(tmp_path / "a", linger=1.0), 0).linger == 1.0
    spool = write_array(tmp_path / "b", linger=0)
    assert "linger" not in json.loads((spool / "manifest.jsonl").read_text().splitlines()[0])
    assert read_element(spool, 0).linger == 0.0


@pytest.mark.parametrize("value", ["1", -1, True, 3600])
def test_a_bad_linger_in_the_header_names_the_key_and_what_is_valid(tmp_path, value):
    spool = write_array(tmp_path, linger=1.0)
    manifest = spool / "manifest.jsonl"
    header, rest = manifest.read_text().split("\n", 1)
    manifest.write_text(json.dumps({**json.loads(header), "linger": value}) + "\n" + rest)
    with pytest.raises(ManifestError, match=r"'linger' must be a number of seconds from 0 to 60"):
        read_element(spool, 0)
