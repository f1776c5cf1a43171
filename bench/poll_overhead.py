"""The poller's cost per cycle against the bare squeue call it makes: 10,000 active splits, real elements.

On the real cluster: a held array (PENDING, stays active) plus an experiment
whose elements really run and finish (sleep_by_value: they end apart), 10,000
active splits in all. Each round times one poll_once with the daemon's memory
(poller.memory) and then the same squeue call run bare (the baseline, same
run). Rounds without change (nothing to write) give the median ratio (target
<= 1.3); rounds with events are reported as milliseconds over the bare call per event. Then the
database gets a long-lived bridge's history (state-history rows, results,
audit snapshots: bench/history_rows.py) and the same is measured again
(target: within 1.1x of the empty database; judged on poll/bare of each phase's
own rounds, as the machine's load moves squeue between phases), with the
poll's queries EXPLAINed. Last, `beat-bridge run` over the 10,000 active splits: its peak RSS
against the same daemon over an empty database (target < 150 MB).
Usage: python bench/poll_overhead.py [active] [--postgres] [--history N,N,N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from dataclasses import dataclass

from bench_daemon import daemon_peak_rss, postgres_database
from common import HELD_QUEUE, bridge_env, median_seconds, one_block, ratio_line
from history_rows import add_history, explain

from bridge.declaration import load_experiment
from bridge.devcluster.sandbox import queue_toml
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.slurm import squeue_argvs
from bridge.submit import assign_splits_to_workers
from poller.memory import _ACTIVE, _COUNTER, ActiveMemory, active_splits
from poller.poll import poll_once

RUNNING = 24  # splits that really run and finish (8 cores: a third of them at a time)
SECONDS = 0.3  # element i sleeps i * SECONDS: they end apart
GAP = 0.3  # seconds between rounds (the daemon's interval is 1 s while busy)
EXTRA_ROUNDS = 15  # rounds after the running experiment ended: Slurm and the database still
QUEUES = HELD_QUEUE + queue_toml("run", max_slots_per_user=RUNNING)
DEPLOYMENT = f'deployment = "pb{uuid.uuid4().hex[:8]}"'  # its own: no other bridge's reconcile cancels its arrays


@dataclass
class Round:
    ours: float
    bare: float
    events: int
    full_read: bool
    partial_read: bool
    active: int
    applied: int  # splits whose Slurm state changed: one transaction each
    sacct: int  # sacct calls (elements squeue had forgotten)


def running_experiment(name: str, splits: int) -> dict:
    """`splits` elements on the `run` queue (not held) that start, run and finish, each after its own time."""
    return {"name": name, "author": "bench", "blocks": {"b": {
        "algorithm": "bridge.examples.algorithms:sleep_by_value", "queue": "run", "environment": "Python-3.11",
        "required_slots": splits, "parameters": {"seconds": SECONDS, "name": name},
        "inputs": {"in": {"dataset": "numbers", "size": splits}}, "outputs": ["out"]}}}


def submit(env, session, declaration: dict) -> list[int]:
    """Declare, schedule, split and submit; the array ids."""
    schedule_experiment(session, load_experiment(session, declaration))
    split_new_jobs(session)
    return [s.job_id for s in assign_splits_to_workers(session, env.backend)]


def one_round(env, session, memory: ActiveMemory, bare_first: bool) -> Round:
    """One poll and the bare squeue, in the order given (a second squeue right after the first is faster)."""
    full, partial = memory.full_reads, memory.partial_reads
    bare = bare_squeue(env, memory) if bare_first else 0.0
    started = time.perf_counter()
    report = poll_once(session, env.backend, memory=memory)
    ours = time.perf_counter() - started
    if any(event == "cancelled" for _, event in report.events):  # another bridge's reconcile, or a person
        raise RuntimeError("someone else cancelled the benchmark's arrays: the run proves nothing")
    bare = bare if bare_first else bare_squeue(env, memory)
    return Round(ours, bare, len(report.events), memory.full_reads > full, memory.partial_reads > partial,
                 report.active, report.applied, report.sacct_calls)


def bare_squeue(env, memory: ActiveMemory) -> float:
    """Seconds of the poll's squeue call(s), run bare: the baseline."""
    started = time.perf_counter()
    for argv in squeue_argvs(memory.arrays()):
        env.backend.runner.run(argv, timeout=60).check()
    return time.perf_counter() - started


def phase(env, session, memory: ActiveMemory, name: str, held: int) -> list[Round]:
    """Rounds while a fresh running experiment starts and finishes, then EXTRA_ROUNDS more."""
    arrays = submit(env, session, running_experiment(name, RUNNING))
    rounds: list[Round] = []
    extra = 0
    deadline = time.monotonic() + 300
    try:
        while extra < EXTRA_ROUNDS and time.monotonic() < deadline:
            rounds.append(one_round(env, session, memory, bare_first=len(rounds) % 2 == 1))
            session.rollback()
            extra += rounds[-1].active <= held  # the running experiment is over
            time.sleep(GAP)
    finally:
        env.backend.client.cancel(map(str, arrays))
    return rounds


def summary(name: str, rounds: list[Round]) -> tuple[float, float]:
    """Print the phase's figures; (median ours, median bare) over the rounds without change.

    A round without change: nothing to write (no event, no Slurm state to record), whatever the
    database read (a partial read after the previous round's events counts here).
    """
    quiet = [r for r in rounds if not r.applied]
    busy = [r for r in rounds if r.events]
    ours, bare = statistics.median(r.ours for r in quiet), statistics.median(r.bare for r in quiet)
    print(ratio_line(f"{name}: poll vs bare squeue, median of {len(quiet)} rounds without change", ours, bare))
    events = sum(r.events for r in busy)
    if events:
        per_event = sum(r.ours - r.bare for r in busy) / events * 1000
        print(f"{name}: {len(busy)} rounds with {events} events: {per_event:.1f} ms over the bare squeue per event")
    print(f"{name}: full reads of the active splits in {sum(r.full_read for r in rounds)} rounds, "
          f"partial reads in {sum(r.partial_read for r in rounds)}, sacct in {sum(r.sacct > 0 for r in rounds)}, "
          f"of {len(rounds)}")
    return ours, bare


def full_read(session) -> float:
    """Median seconds of the memory's full read of the active splits (after a restart, a foreign change)."""
    def once() -> None:
        active_splits(session)
        session.rollback()
    return median_seconds(once, 9)


def plans(session) -> None:
    """EXPLAIN the queries a poll runs every round (the counter, a full read)."""
    dialect = session.get_bind().dialect
    for name, stmt in (("counter", _COUNTER), ("active splits", _ACTIVE)):
        sql = str(stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        print(f"plan of the {name} query: {explain(session, sql)}")


def main(active: int, postgres: bool, history: tuple[int, int, int]) -> None:
    with postgres_database(postgres) as db_url:
        env = bridge_env(QUEUES, db_url=db_url, extra=DEPLOYMENT)
        memory = ActiveMemory()
        held_count = active - RUNNING
        dialect = env.sessions.kw["bind"].dialect.name
        with env.sessions() as session:
            held = submit(env, session, one_block("held", held_count))
            try:
                empty = summary("empty history", phase(env, session, memory, "running-1", held_count))
                reads = [full_read(session)]
                started = time.monotonic()
                add_history(session, *history)
                print(f"history added in {time.monotonic() - started:.0f} s: {history[0]} state-history rows, "
                      f"{history[1]} results, {history[2]} accounting snapshots")
                plans(session)
                session.rollback()
                large = summary("large history", phase(env, session, memory, "running-2", held_count))
                reads.append(full_read(session))
                session.rollback()
                rss, idle = daemon_peak_rss(env), daemon_peak_rss(bridge_env(QUEUES, extra=DEPLOYMENT))
            finally:
                env.backend.client.cancel(map(str, held))
    print(f"{active} active splits ({held_count} held, {RUNNING} running and finishing), "
          f"{dialect}")
    # the history is judged on the poll's cost relative to the squeue call of the same rounds: the two
    # phases run minutes apart, and the machine's load moves squeue itself more than any history does
    print(ratio_line("poll/bare without change, large history vs empty", large[0] / large[1], empty[0] / empty[1],
                     unit="x"))
    print(ratio_line("a full read of the active splits, large history vs empty", reads[1] * 1000, reads[0] * 1000,
                     unit="ms"))
    print(ratio_line("beat-bridge run peak RSS, 10,000 active vs none", rss / 1024, idle / 1024, "MB")
          + f"; target < 150 MB: {'met' if rss / 1024 < 150 else 'NOT met'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("active", type=int, nargs="?", default=10_000)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL on 127.0.0.1 instead of SQLite")
    parser.add_argument("--history", default="2000000,1000000,1000000",
                        help="state-history rows, results, accounting snapshots")
    args = parser.parse_args()
    main(args.active, args.postgres, tuple(int(n) for n in args.history.split(",")))
