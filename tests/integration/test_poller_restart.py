"""`beat-bridge run` as a real process: killed with SIGKILL again and again (inside the sbatch and poll
windows, steered by its log, and at seeded random moments) and restarted, it loses no callback and doubles
none, on SQLite and on PostgreSQL; SIGTERM finishes the cycle and exits 0."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env, wait_sacct
from kill_windows import TARGET_WAIT, Life, kill_at, unrecorded_claims
from poller_env import (
    FAST_CLAIMS,
    POLL,
    Arrays,
    blocks,
    finished,
    results_of,
    run_loop,
    schedule,
    split_history,
    start_run,
    status,
    tagged_arrays,
    tags_by_block,
    wait_for,
)


def _from(*names: str) -> dict:
    return {n: {"block": n, "output": "out"} for n in names}


def levels(name: str) -> dict:
    """Four levels (a -> b, a+b -> c -> d), b slow enough for several kills while the work is on Slurm."""
    return {"name": name, "author": "frank", "blocks": {
        "a": block("scale", slots=2, size=6, parameters={"factor": 11}),
        "b": block("sleep_then_copy", slots=2, inputs={"in": {"block": "a", "output": "out"}},
                   parameters={"seconds": 3}),
        "c": block("add", slots=2, inputs=_from("a", "b")),
        "d": block("total", slots=1, inputs={"in": {"block": "c", "output": "out"}}),
    }}


KILL_SEED = "BRIDGE_KILL_SEED"  # set it to replay a run: the seed is printed by every run


def kill_plan(rng: random.Random) -> list[str | None]:
    """Where each life is killed: the first two in the windows that matter, then a seeded mix.

    None is a kill after 0.7-1.5 s: start-up takes ~0.9 s, so some land before any cycle.
    """
    rest: list[str | None] = ["sbatch", "sbatch-accepted", "squeue", "callback", "callback", None, None]
    rng.shuffle(rest)
    return ["sbatch-accepted", "squeue", *rest]


def test_run_killed_with_sigkill_again_and_again_fires_every_callback_exactly_once(
        tmp_path, slurm_cluster, slurm, db_url):
    seed = int(os.environ.get(KILL_SEED) or random.SystemRandom().randrange(2**32))
    print(f"kill seed {seed} (replay: {KILL_SEED}={seed})")
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=db_url, extra=POLL + FAST_CLAIMS)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, levels("killed"))
    rng = random.Random(seed)
    lives: list[tuple[Life, dict]] = []  # each killed process, with the unrecorded claims it left
    log_path = tmp_path / "run.log"
    plan, retries = kill_plan(rng), 3
    while plan:
        target = plan.pop(0)
        if status(env, experiment_id) in ("D", "F"):
            break
        life = kill_at(tmp_path / "bridge.toml", log_path, target,
                       TARGET_WAIT if target else rng.uniform(0.7, 1.5))
        assert life.code == -signal.SIGKILL, life.lines[-30:]
        lives.append((life, unrecorded_claims(env, slurm)))
        if target == "sbatch-accepted" and not life.child_exited and retries:  # sbatch not caught: aim again
            plan.insert(0, target)
            retries -= 1
    with open(log_path, "ab") as log:
        process = start_run(tmp_path, log)  # the last one runs to the end, undisturbed
        try:
            wait_for("experiment finished", lambda: status(env, experiment_id) in ("D", "F"), timeout=60)
            time.sleep(2.0)  # past its start-up: SIGTERM before the handler is set simply kills it
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
    seen = f"seed {seed}: " + "; ".join(f"{life}, unrecorded claims {claims}" for life, claims in lives)
    assert code == 0, (seen, log_path.read_text()[-3000:])
    assert len(lives) >= 4, f"the experiment finished after only {len(lives)} kills: the test proved little; {seen}"
    assert status(env, experiment_id) == "D", (seen, log_path.read_text()[-3000:])
    windows = Counter(life.window for life, _ in lives)
    assert windows["sbatch"] >= 1 and windows["poll"] >= 1, seen  # both windows were hit, by the log
    assert any(claims for life, claims in lives if life.window == "sbatch"), seen  # and by the database
    # the sharpest point: Slurm had accepted the array, the bridge had not recorded it (found by its tag)
    assert any(all(claims.values()) for life, claims in lives if life.window == "sbatch" and claims), seen

    with env.sessions() as session:
        named = blocks(session, experiment_id)
        splits_per_block = {"a": 2, "b": 2, "c": 2, "d": 1}
        for name, count in splits_per_block.items():
            results = results_of(session, named[name])
            assert [r.split_index or 0 for r in results] == list(range(count)), (name, results)
            assert all(r.status == 0 for r in results), name
        history = split_history(session)
        assert len(history) == sum(splits_per_block.values()), history
        for split_id, steps in history.items():
            moves = [(f, t) for f, t, _ in steps]
            assert moves in ([(None, "N"), ("N", "P"), ("P", "C")], [(None, "N"), ("N", "C")]), (split_id, steps)
        block_ids = {b.id: n for n, b in named.items()}

    # every block ran as exactly one array: tags that reached Slurm, by block
    tags = tags_by_block(env.config.spool_dir)
    records = tagged_arrays(slurm, since, tags, blocks=len(splits_per_block))
    arrays = Counter(block_ids[tags[t]] for t in {r.name for r in records})
    assert arrays == Counter(splits_per_block.keys()), (arrays, tags)
    assert len({(r.name, r.array_job_id) for r in records}) == len(arrays)  # one array id per tag


def test_sigterm_finishes_the_cycle_and_exits_0_and_a_restart_takes_over(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, extra=POLL)
    experiment_id = schedule(env, {"name": "termed", "author": "frank", "blocks": {
        "nap": block("sleep_then_copy", slots=2, size=4, parameters={"seconds": 4}),
    }})
    log_path = tmp_path / "run.log"
    with open(log_path, "ab") as log:
        process = start_run(tmp_path, log)
        try:
            wait_for("the splits running", lambda: status(env, experiment_id) == "R", timeout=30)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
        text = log_path.read_text()
        assert code == 0, text[-3000:]
        assert "bridge stopped after" in text, text[-3000:]  # it left its loop, not killed mid-cycle
        assert status(env, experiment_id) == "R"  # stopped with work on Slurm: nothing rolled back
        process = start_run(tmp_path, log)
        try:
            wait_for("experiment done after the restart", lambda: status(env, experiment_id) == "D", timeout=40)
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    with env.sessions() as session:
        history = split_history(session)
        assert sorted([(f, t) for f, t, _ in h] for h in history.values()) == [
            [(None, "N"), ("N", "P"), ("P", "C")]] * 2, history


def test_a_crash_between_reading_squeue_and_committing_the_callbacks_loses_none_and_doubles_none(
        tmp_path, slurm_cluster, slurm, monkeypatch):
    """Deterministic twin of the SIGKILL test: the process 'dies' (KeyboardInterrupt) inside a poll,
    after squeue was read and one split's callbacks were committed, before the next split's."""
    import poller.poll
    from bridge.slurm_events import Kind
    from poller.loop import run_cycle

    env = make_env(tmp_path, slurm_cluster, slurm)
    experiment_id = schedule(env, {"name": "crash-mid-poll", "author": "frank", "blocks": {
        "a": block("scale", slots=3, size=6, parameters={"factor": 19}),
        "b": block("square", slots=1, inputs={"in": {"block": "a", "output": "out"}}),
    }})
    with env.sessions() as session:
        (submission,) = run_cycle(session, env.backend).submitted
    wait_sacct(slurm, [submission.job_id], lambda rs: len(rs) == 3 and all(r.state == "COMPLETED" for r in rs))

    real, calls = poller.poll.apply_slurm_state, []

    def dies_on_the_second(session, split_id, facts, action):  # each split's one settling transaction
        if action.kind is Kind.DONE:
            calls.append(split_id)
            if len(calls) == 2:
                raise KeyboardInterrupt("simulated kill -9 in the middle of a poll")
        return real(session, split_id, facts, action)

    monkeypatch.setattr(poller.poll, "apply_slurm_state", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        run_loop(env, finished(experiment_id), timeout=30)
    monkeypatch.setattr(poller.poll, "apply_slurm_state", real)  # the restarted process
    arrays = Arrays()
    run_loop(env, finished(experiment_id), timeout=60, on_cycle=arrays)

    assert status(env, experiment_id) == "D" and len(calls) == 2
    assert len(arrays.job_ids) == 1  # only b's array: a was not submitted again
    with env.sessions() as session:
        history = split_history(session)
        assert len(history) == 4, history
        for split_id, steps in history.items():
            assert [(f, t) for f, t, _ in steps] == [(None, "N"), ("N", "P"), ("P", "C")], (split_id, steps)
        assert [r.split_index for r in results_of(session, blocks(session, experiment_id)["a"])] == [0, 1, 2]
