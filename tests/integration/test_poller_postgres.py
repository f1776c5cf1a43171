"""Two `beat-bridge run` processes on one PostgreSQL database share the work without doing any twice."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env
from poller_env import (
    POLL,
    blocks,
    results_of,
    schedule,
    split_history,
    start_run,
    status,
    tagged_arrays,
    tags_by_block,
    wait_for,
)

pytestmark = pytest.mark.postgres


def _from(*names: str) -> dict:
    return {n: {"block": n, "output": "out"} for n in names}


def test_two_run_loops_on_one_postgresql_database_submit_every_split_exactly_once(
        tmp_path, slurm_cluster, slurm, postgres_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=postgres_url, extra=POLL)
    since = datetime.now() - timedelta(minutes=1)
    ids = [schedule(env, {"name": f"shared-{n}", "author": author, "blocks": {
        "a": block("scale", slots=3, size=6, parameters={"factor": 23 + n}),
        "b": block("square", slots=2, inputs={"in": {"block": "a", "output": "out"}}),
        "c": block("add", slots=2, inputs=_from("a", "b")),
        "d": block("total", slots=1, inputs={"in": {"block": "c", "output": "out"}}),
    }}) for n, author in enumerate(("hana", "ivan", "hana"))]
    paths = [tmp_path / "run-1.log", tmp_path / "run-2.log"]
    with open(paths[0], "ab") as log1, open(paths[1], "ab") as log2:
        runs = [start_run(tmp_path, log1), start_run(tmp_path, log2)]
        try:
            wait_for("all experiments finished", lambda: all(status(env, i) in ("D", "F") for i in ids), timeout=90)
        finally:
            for run in runs:
                run.send_signal(signal.SIGTERM)
            codes = [run.wait(timeout=20) for run in runs]
    texts = [p.read_text() for p in paths]
    assert codes == [0, 0], [t[-2000:] for t in texts]
    assert [status(env, i) for i in ids] == ["D"] * 3, [t[-2000:] for t in texts]

    with env.sessions() as session:
        history = split_history(session)
        assert len(history) == 3 * (3 + 2 + 2 + 1), history
        for split_id, steps in history.items():
            assert [(f, t) for f, t, _ in steps] in (
                [(None, "N"), ("N", "P"), ("P", "C")], [(None, "N"), ("N", "C")]), (split_id, steps)
        block_of = {b.id: (i, n) for i in ids for n, b in blocks(session, i).items()}
        for i in ids:
            for name, b in blocks(session, i).items():
                assert all(r.status == 0 for r in results_of(session, b)), (i, name)
    tags = tags_by_block(env.config.spool_dir)
    records = tagged_arrays(slurm, since, tags, blocks=len(block_of))
    arrays = Counter(block_of[tags[t]] for t in {r.name for r in records})
    assert arrays == Counter(block_of.values()), arrays  # every block one array, none twice
    assert len({(r.name, r.array_job_id) for r in records}) == len(arrays)
