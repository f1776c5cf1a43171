"""BEAT's own algorithms on the real cluster: a DAG of test-prefix algorithms through Slurm arrays.

`left` (sequential/echo) and `right` (legacy/echo) read generated datasets written in
BEAT's format at `experiments add`; `sum` (sequential/add) reads both; each block runs
in 2 splits. Every output is read back with beat.backend.python's CachedDataSource.
A twin DAG added with it mirrors its jobs (no array of its own);
beside them, sequential/process_crash fails through on_split_fail with BEAT's error text.
Then the same DAG declared again is skipped from the cache without a new array.
"""

from __future__ import annotations

import json

from beat_parts import beat_test_prefix
from bridge_env import make_env
from poller_env import Arrays, blocks, finished, results_of, run_loop, split_history, status

from bridge.declaration import load_experiment
from bridge.declaration_beat import BeatSite
from bridge.helpers import schedule_experiment


def _block(algorithm: str, inputs: dict, slots: int = 2, **extra) -> dict:
    return {"algorithm": algorithm, "queue": "default", "environment": "Python-3.11", "required_slots": slots,
            "inputs": inputs, "outputs": ["out"], **extra}


def beat_dag(name: str) -> dict:
    return {"name": name, "author": "beatrice", "blocks": {
        "left": _block("sequential/echo/1", {"in": {"dataset": "numbers", "size": 6}}),
        "right": _block("legacy/echo/1", {"in": {"dataset": "squares", "size": 6}}),
        "sum": _block("sequential/add/1", {"in1": {"block": "left", "output": "out"},
                                           "in2": {"block": "right", "output": "out"}}),
    }}


CRASH = {"name": "crash", "author": "beatrice", "blocks": {
    "crash": _block("sequential/process_crash/1", {"in": {"dataset": "numbers", "size": 4}}, slots=1)}}


def add(env, site: BeatSite, declaration: dict) -> int:
    with env.sessions() as session:
        experiment = load_experiment(session, declaration, env.config.limits, site)
        schedule_experiment(session, experiment)
        return experiment.id


def read_back(cache, path: str, prefix) -> list[tuple[int, int, int]]:
    from beat.backend.python.data import CachedDataSource

    source = CachedDataSource()
    assert source.setup(str(cache / path) + ".data", str(prefix)), path
    return [(int(d.value), s, e) for d, s, e in (source[i] for i in range(len(source)))]


def test_beat_dag_runs_on_slurm_and_beat_reads_every_output(tmp_path, slurm_cluster, slurm):
    prefix = beat_test_prefix()
    env = make_env(tmp_path, slurm_cluster, slurm, extra=f'beat_prefix = "{prefix}"')
    site = BeatSite(env.config.beat_prefix, env.config.cache_root)
    dag, twin, crash = add(env, site, beat_dag("beat-dag")), add(env, site, beat_dag("twin")), add(env, site, CRASH)
    arrays = Arrays()
    run_loop(env, lambda s: all(finished(e)(s) for e in (dag, twin, crash)), timeout=120, on_cycle=arrays)

    expected = {"left": [i for i in range(6)], "right": [i * i for i in range(6)],
                "sum": [i + i * i for i in range(6)]}
    with env.sessions() as session:
        assert status(env, dag) == "D"
        for name, block in blocks(session, dag).items():
            assert block.status.value == "C" and len(arrays.by_block[block.id]) == 1  # one array of 2 elements
            path = json.loads(block.command)["outputs"]["out"]["path"]
            base = env.config.cache_root / path
            assert len(list(base.parent.glob(base.name + ".*.data"))) == 2  # one BEAT file per split
            assert read_back(env.config.cache_root, path, prefix) == [(v, i, i) for i, v in enumerate(expected[name])]
        assert status(env, twin) == "D"  # its jobs mirrored dag's: no array of its own
        assert not {b.id for b in blocks(session, twin).values()} & set(arrays.by_block)
        assert status(env, crash) == "F"
        failed = blocks(session, crash)["crash"]
        (result,) = results_of(session, failed)
        assert result.status != 0 and "exited with code 1" in result.system_error  # Slurm's word; BEAT's below
        assert "sequential/process_crash/1.py" in result.user_error
        assert "NameError: name 'b' is not defined" in result.user_error
        (history,) = [h for h in split_history(session).values() if h[-1][1] == "F"]
        assert history[-1][1:] == ("F", "on_split_fail")

    again = add(env, site, beat_dag("beat-dag-again"))  # same algorithms, parameters and inputs: same hashes
    submitted = len(arrays.job_ids)
    run_loop(env, finished(again), timeout=30, on_cycle=arrays)
    assert status(env, again) == "D" and len(arrays.job_ids) == submitted  # from the cache, no new array
