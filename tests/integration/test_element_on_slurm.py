"""A rendered array script runs the element on the real cluster: 2 splits, verified cache, results.

A third element of the same array runs a failing algorithm: sacct shows FAILED
with the element's exit code 1 (user error) and its result file says why.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from bridge.cache import is_cache_complete, read_index
from bridge.hashing import cache_path, sha256_json
from bridge.render import ArraySpec, render_array_script
from bridge.sacct import parse_sacct
from bridge.sbatch_scripts.manifest import write_manifest
from bridge.slurm import parse_sbatch_parsable, sacct_argv, sbatch_argv

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}


def _write_spool(spool: Path, cache: Path, tag: str, out_path: str) -> None:
    """One manifest for three elements: two halves of a scale block, and a third with its own algorithm."""
    shared = {
        "experiment": "slurm-test", "author": "alice", "block": "scaled",
        "algorithm": "bridge.examples.algorithms:scale", "parameters": {"factor": 5},
        "inputs": {"in": {"dataset": "numbers", "size": 10, "hash": "h", "path": "p"}},
        "outputs": {"out": {"hash": out_path.replace("/", ""), "path": out_path}},
        "nb_splits": 2, "job_id": 1, "block_id": 1,
    }
    entries = {index: {"range": span, "split_index": index, "split_id": index + 1}
               for index, span in enumerate(([0, 4], [5, 9]))}
    entries[2] = {"range": None, "split_index": 2, "split_id": 3, "block": "failing",
                  "algorithm": "bridge.examples.algorithms:fail_always", "parameters": {"message": "meant to fail"}}
    write_manifest(spool, tag, cache, 0, shared, entries)


def _wait_terminal(slurm, job_id: int, since: datetime, count: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        text = slurm.run(sacct_argv(since, job_ids=[job_id]), timeout=30).check().stdout
        elements = {r.array_task_id: r for r in parse_sacct(text) if r.is_element and not r.pending_range}
        if len(elements) == count and all(r.state in TERMINAL for r in elements.values()):
            return elements
        assert time.monotonic() < deadline, f"array {job_id} not finished after {timeout} s:\n{text}"
        time.sleep(1.0)


def test_array_elements_run_the_algorithm_and_write_a_verified_cache(slurm, tmp_path):
    tag = f"bb-element-{uuid.uuid4().hex[:12]}"
    spool, cache, logs = tmp_path / "spool" / tag, tmp_path / "cache", tmp_path / "logs"
    for directory in (spool, cache, logs):
        directory.mkdir(parents=True)
    out_path = cache_path(sha256_json({"test": tag}))
    _write_spool(spool, cache, tag, out_path)
    script = render_array_script(ArraySpec(
        job_name="bb-element-test", submission_tag=tag, partition="debug", cpus_per_task=1,
        mem_mb=200, time_minutes=2, array_indices=(0, 1, 2),
        output=str(logs / "%A_%a.out"), error=str(logs / "%A_%a.err"),
        python=sys.executable, element_runner="bridge.sbatch_scripts.element", spool_dir=str(spool),
    ))
    since = datetime.now() - timedelta(minutes=1)

    job_id = parse_sbatch_parsable(slurm.run(sbatch_argv(), stdin=script, timeout=30).check().stdout)
    elements = _wait_terminal(slurm, job_id, since, count=3)

    logs_text = "\n".join(f"{f.name}: {f.read_text()}" for f in sorted(logs.iterdir()))
    states = {i: (r.state, r.exit_code) for i, r in elements.items()}
    assert states == {0: ("COMPLETED", 0), 1: ("COMPLETED", 0), 2: ("FAILED", 1)}, logs_text
    for index in (0, 1):
        result = json.loads((spool / f"split-{index}.result.json").read_text())
        assert result["status"] == 0 and result["system_error"] is None, result
        assert result["statistics"]["data"]["written"] > 0
        out = (logs / f"{job_id}_{index}.out").read_text()
        assert f"element {tag} split {index} (split {index + 1}," in out and "done in" in out  # its own entry
    failed = json.loads((spool / "split-2.result.json").read_text())
    assert failed["status"] == 1 and "RuntimeError: meant to fail" in failed["user_error"]
    assert "user error (exit 1)" in (logs / f"{job_id}_2.err").read_text()
    assert is_cache_complete(out_path, 2, cache)
    assert read_index(out_path, cache) == [(i, i) for i in range(10)]
    data = [json.loads(line) for f in sorted((cache / out_path).parent.glob("*.data"))
            for line in f.read_text().splitlines()]
    assert sorted((d["index"], d["value"]) for d in data) == [(i, 5 * i) for i in range(10)]


def test_allocate_is_killed_over_its_memory_and_scancel_reaches_the_element(slurm, tmp_path):
    """Element 0 holds 400 MB under --mem=100M; element 1 sleeps and is scancelled while running."""
    tag = f"bb-element-{uuid.uuid4().hex[:12]}"
    spool, cache, logs = tmp_path / "spool" / tag, tmp_path / "cache", tmp_path / "logs"
    for directory in (spool, cache, logs):
        directory.mkdir(parents=True)
    entries = {index: {
        "block": function, "algorithm": f"bridge.examples.algorithms:{function}", "parameters": parameters,
        "outputs": {"out": {"path": cache_path(sha256_json({"test": tag, "i": index}))}},
        "range": None, "split_index": index,
    } for index, (function, parameters) in enumerate((
        ("allocate", {"megabytes": 400, "seconds": 20}), ("sleep_then_copy", {"seconds": 60})))}
    write_manifest(spool, tag, cache, 0, {"experiment": "slurm-test", "nb_splits": 2,
                                          "inputs": {"in": {"dataset": "numbers", "size": 2}}}, entries)
    script = render_array_script(ArraySpec(
        job_name="bb-element-limits", submission_tag=tag, partition="debug", cpus_per_task=1,
        mem_mb=100, time_minutes=2, array_indices=(0, 1),
        output=str(logs / "%A_%a.out"), error=str(logs / "%A_%a.err"),
        python=sys.executable, element_runner="bridge.sbatch_scripts.element", spool_dir=str(spool),
    ))
    since = datetime.now() - timedelta(minutes=1)
    job_id = parse_sbatch_parsable(slurm.run(sbatch_argv(), stdin=script, timeout=30).check().stdout)

    deadline = time.monotonic() + 60
    while not _running(slurm, job_id, since, 1):
        assert time.monotonic() < deadline, "element 1 never ran"
        time.sleep(0.5)
    time.sleep(1.0)  # let python start and reach the algorithm
    slurm.run(["scancel", f"{job_id}_1"], timeout=30).check()
    elements = _wait_terminal(slurm, job_id, since, count=2)

    logs_text = "\n".join(f"{f.name}: {f.read_text()}" for f in sorted(logs.iterdir()))
    # No cgroups here: OverMemoryKill kills with SIGKILL and the allocation row says FAILED
    # (../shared/slurm-notes.md); a cgroup-enforcing cluster would say OUT_OF_MEMORY.
    assert elements[0].state in {"FAILED", "OUT_OF_MEMORY"}, logs_text
    assert "memory" in (logs / f"{job_id}_0.err").read_text().lower(), logs_text
    assert elements[0].signal == 9 or elements[0].state == "OUT_OF_MEMORY", elements[0]
    if (spool / "split-0.result.json").exists():  # SIGKILL (seen here) leaves none: the poller decides
        assert json.loads((spool / "split-0.result.json").read_text())["status"] == 1
    assert elements[1].state == "CANCELLED", logs_text
    cancelled = json.loads((spool / "split-1.result.json").read_text())
    assert cancelled["status"] == 1 and "SIGTERM" in cancelled["system_error"]
    assert not list(cache.rglob("*.data"))


def _running(slurm, job_id: int, since: datetime, index: int) -> bool:
    text = slurm.run(sacct_argv(since, job_ids=[job_id]), timeout=30).check().stdout
    return any(r.array_task_id == index and r.state == "RUNNING" for r in parse_sacct(text))
