"""The fault campaign (issue 9, "Done when"): a 100-split experiment on the real cluster and PostgreSQL
through 15 kill -9 of `beat-bridge run`, slurmctld and slurmdbd stopped and started, the bridge's
database backends terminated mid-cycle and the PostgreSQL server restarted.

Nothing lost, nothing doubled: every split ran exactly once by sacct (by tag and
array index, with --duplicates; the bridge has no retries), every state
transition is recorded once, and the experiment ends D. The seed is printed;
BRIDGE_CAMPAIGN_SEED replays a campaign. Claims a killed daemon left are settled
by tag look-up; `FAST_CLAIMS` (poller_env) keeps a lost one's release to seconds.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from datetime import datetime, timedelta

import pytest
from bridge_env import block, make_env, queue_toml
from campaign import Figures, fault_life, plan
from kill_windows import TARGET_WAIT, kill_at, unrecorded_claims
from poller_env import (
    FAST_CLAIMS,
    POLL,
    blocks,
    results_of,
    sacct_elements,
    schedule,
    start_run,
    status,
    tags_by_block,
    wait_for,
)
from sqlalchemy import func, select

from bridge.models import StateHistory

pytestmark = [pytest.mark.postgres,
              pytest.mark.exclusive("stops slurmctld and slurmdbd, restarts the PostgreSQL server")]

SEED = "BRIDGE_CAMPAIGN_SEED"
SPLITS = {"a": 33, "b": 33, "c": 33, "d": 1}
# 2 splits of the author on Slurm at once: ~17 arrays per block, each sbatch a window for a kill,
# and work on Slurm for the whole campaign (b alone ~70 s: with the dev cluster's epilog each
# element's end starts the next at once, and with 4 at once and 2-3 s the experiment ended
# before the campaign's last events, 51-63 s of them)
QUEUES = queue_toml("default", max_slots_per_user=2)


def hundred_splits() -> dict:
    """Four levels, 100 splits of short elements (a -> b, a+b -> c -> d)."""
    def inputs(*names: str) -> dict:
        return {n: {"block": n, "output": "out"} for n in names}
    return {"name": "campaign", "author": "ivan", "blocks": {
        "a": block("scale", slots=33, size=33, parameters={"factor": 3}),
        "b": block("sleep_then_copy", slots=33, inputs={"in": {"block": "a", "output": "out"}},
                   parameters={"seconds": 4}),
        "c": block("add", slots=33, inputs=inputs("a", "b")),
        "d": block("total", slots=1, inputs={"in": {"block": "c", "output": "out"}}),
    }}


def test_fault_campaign_over_100_splits_loses_nothing_and_doubles_nothing(
        tmp_path, slurm_cluster, slurm, postgres_url):
    seed = int(os.environ.get(SEED) or random.SystemRandom().randrange(2**32))
    print(f"campaign seed {seed} (replay: {SEED}={seed})")
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=postgres_url, queues=QUEUES,
                   extra=POLL + FAST_CLAIMS)
    since = datetime.now() - timedelta(minutes=1)
    experiment_id = schedule(env, hundred_splits())
    rng, figures = random.Random(seed), Figures(seed)
    config, log_path = tmp_path / "bridge.toml", tmp_path / "run.log"
    events = plan(rng)
    for number, event in enumerate(events):
        assert status(env, experiment_id) not in ("D", "F"), (
            f"the experiment ended after {number} of {len(events)} events: the campaign proved little; "
            f"{figures.report(log_path.read_text())}")
        if event.startswith("kill:"):
            target = event.removeprefix("kill:")
            life = kill_at(config, log_path, None if target == "delay" else target,
                           rng.uniform(0.7, 1.5) if target == "delay" else TARGET_WAIT)
            assert life.code == -signal.SIGKILL, life.lines[-30:]
            figures.kills[target] += 1
            figures.windows[life.window or "elsewhere"] += 1
            figures.unrecorded += bool(unrecorded_claims(env, slurm))
        else:
            life = fault_life(event, config, log_path, slurm_cluster, postgres_url)
            figures.faults.append(life)
            assert life.survived and life.code == 0, (str(life), log_path.read_text()[-3000:])
    with open(log_path, "ab") as log:
        process = start_run(tmp_path, log)  # the last one runs to the end, undisturbed
        try:
            wait_for("experiment finished", lambda: status(env, experiment_id) in ("D", "F"), timeout=120)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    text = log_path.read_text()
    seen = figures.report(text)
    print(seen)
    assert code == 0 and status(env, experiment_id) == "D", (seen, text[-3000:])
    assert sum(figures.kills.values()) == 15 and len(figures.faults) == 4, seen
    for fault in (f for f in figures.faults if f.fault.startswith("pg_")):  # felt mid-transaction, and survived
        # a failed cycle, or the snapshot read between cycles (its own transaction) that was struck instead
        assert any("database error" in line for line in fault.failed_cycles) or fault.felt_between, (
            seen, fault.failed_cycles)

    with env.sessions() as session:
        named = blocks(session, experiment_id)
        for name, count in SPLITS.items():
            results = results_of(session, named[name])
            assert [r.split_index or 0 for r in results] == list(range(count)), (name, seen)
            assert all(r.status == 0 and not r.system_error for r in results), (name, seen)
        doubled = session.execute(select(StateHistory.entity, StateHistory.entity_id, StateHistory.to_status)
                                  .group_by(StateHistory.entity, StateHistory.entity_id, StateHistory.to_status)
                                  .having(func.count() > 1)).all()
        assert doubled == [], (doubled, seen)
        block_names = {b.id: n for n, b in named.items()}

    # every split started exactly once: sacct's every run of every tagged array, by block and array index
    tags = tags_by_block(env.config.spool_dir)
    runs = wait_for("100 element runs in sacct", lambda: (lambda rs: rs if len(rs) >= 100 else None)(
        [r for r in sacct_elements(slurm, since, names=tags, every_run=True) if r.start is not None]), timeout=30)
    started = Counter((block_names[tags[r.name]], r.array_task_id) for r in runs)
    assert started == Counter({(n, i): 1 for n, count in SPLITS.items() for i in range(count)}), (
        {k: v for k, v in started.items() if v != 1}, seen)
    assert {r.state for r in runs} == {"COMPLETED"}, seen
