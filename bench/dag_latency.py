"""A DAG of three levels of 2-second tasks through the whole bridge (submit, run, poll, unblock).

Prints the wall time from scheduling to experiment done against the critical
path measured in the same run (the elements' own run times, from sacct), and
against the nominal 6 s. Target: within ~3 s of the critical path.
Usage: python bench/dag_latency.py [seconds_per_task] [poll min_interval]
"""

from __future__ import annotations

import sys
import time

from common import bridge_env, queue_toml, ratio_line

from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment
from bridge.models import Experiment
from poller.demo import audit
from poller.loop import BridgeLoop

QUEUES = queue_toml("default", max_slots_per_user=16)


def level(seconds: float, source: dict) -> dict:
    return {"algorithm": "bridge.examples.algorithms:sleep_then_copy", "queue": "default",
            "environment": "Python-3.11", "required_slots": 2, "parameters": {"seconds": seconds},
            "inputs": {"in": source}, "outputs": ["out"]}


def main(seconds: float, interval: float | None = None) -> None:
    env = bridge_env(QUEUES, interval)
    declaration = {"name": "three-levels", "author": "bench", "blocks": {
        "one": level(seconds, {"dataset": "numbers", "size": 4}),
        "two": level(seconds, {"block": "one", "output": "out"}),
        "three": level(seconds, {"block": "two", "output": "out"}),
    }}
    arrays: list[int] = []
    with env.sessions() as session:
        experiment_id = load_experiment(session, declaration).id
        started = time.monotonic()
        schedule_experiment(session, session.get(Experiment, experiment_id))
    loop = BridgeLoop(env.sessions, env.backend, env.config.poll,
                      on_cycle=lambda s, report: arrays.extend(sub.job_id for sub in report.submitted))
    loop.run(done=lambda s: s.get(Experiment, experiment_id).status.value in ("D", "F"))
    wall = time.monotonic() - started
    with env.sessions() as session:
        assert session.get(Experiment, experiment_id).status.value == "D"
    print(f"3 levels x {seconds:g} s tasks, polling every {env.config.poll.min_interval:g} s: "
          f"done in {wall:.2f} s, {loop.cycles} cycles, "
          f"{loop.squeue_calls} squeue + {loop.sacct_calls} sacct calls")
    print(ratio_line("wall vs critical path of the elements' run times", wall, critical_path(env, arrays)))
    print(ratio_line("wall vs nominal critical path", wall, 3 * seconds))


def critical_path(env, arrays: list[int]) -> float:
    """Sum over the levels of the longest element run time (sacct Start..End), waiting for sacct to settle."""
    records = [r for r in audit(env.backend.client, arrays, 2 * len(arrays)) if r.start]
    longest: dict[int, float] = {}
    for r in records:
        longest[r.array_job_id] = max(longest.get(r.array_job_id, 0.0), (r.end - r.start).total_seconds())
    return sum(longest.values())


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0, float(sys.argv[2]) if len(sys.argv) > 2 else None)
