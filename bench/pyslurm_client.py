"""The pyslurm client against the CLI client, in one run: polling 10,000 active splits, submitting 2,000.

Poll: one bridge submits ACTIVE splits as held arrays (PENDING: they stay
active, nothing runs); then each round runs poll_once over them with the CLI
client's backend and with the pyslurm client's (the same database, each its
own poller memory), in alternating order; the medians and their ratio are
printed, and so are those of the clients' status() alone (the Slurm-facing
part: one squeue process against one slurm_load_jobs in the worker).
Submit: two fresh bridges each submit SUBMIT held splits with
assign_splits_to_workers (after a 3-split warm-up), one through each client;
the time of the clients' submit calls alone is printed too.
Finished: an array of FINISHED elements that really run (`true`) and end; once
all have, each client's status() over them, with slurmctld's table that large.
Everything held is cancelled at the end. Runs against the running local cluster
(it never starts or stops one). Usage: python bench/pyslurm_client.py [active] [submit] [finished]
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import HELD_QUEUE, one_block, ratio_line

from bridge.declaration import load_experiment
from bridge.devcluster.cluster import load_spec
from bridge.devcluster.sandbox import Sandbox, open_sandbox
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.pyslurm_client import PyslurmClient
from bridge.runner import LocalRunner
from bridge.slurm_client import SlurmClient
from bridge.submit import assign_splits_to_workers
from poller.memory import ActiveMemory, active_splits
from poller.poll import poll_once

ROUNDS = 15
DEPLOYMENT = f'deployment = "pc{uuid.uuid4().hex[:8]}"'  # its own: no other bridge's reconcile cancels its arrays


def env(runner_name: str) -> Sandbox:
    spec = load_spec()
    root = Path(tempfile.mkdtemp(prefix="beat-bench-pyslurm-"))
    return open_sandbox(root, spec.slurm_conf, HELD_QUEUE, LocalRunner(env=spec.env()), extra=DEPLOYMENT,
                        runner_name=runner_name)


class Timed:
    """A client whose submit calls are timed (everything else passes through)."""

    def __init__(self, real) -> None:
        self.real, self.seconds = real, 0.0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def submit(self, script, directives=None):
        started = time.perf_counter()
        try:
            return self.real.submit(script, directives)
        finally:
            self.seconds += time.perf_counter() - started


def submit(sandbox: Sandbox, name: str, n: int) -> tuple[float, float, list[int]]:
    """Schedule one block of n held splits and time assign_splits_to_workers; (whole, submit calls, array ids)."""
    timed = Timed(sandbox.backend.client)
    backend = dataclasses.replace(sandbox.backend, client=timed)
    with sandbox.sessions() as session:
        schedule_experiment(session, load_experiment(session, one_block(name, n)))
        split_new_jobs(session)
        gc.collect()
        started = time.perf_counter()
        submissions = assign_splits_to_workers(session, backend)
        elapsed = time.perf_counter() - started
    assert sum(len(s.split_ids) for s in submissions) == n, submissions
    return elapsed, timed.seconds, [s.job_id for s in submissions]


def submission(n: int) -> list[int]:
    results, ids = {}, []
    for kind in ("local", "pyslurm"):
        sandbox = env(kind)
        ids += submit(sandbox, "warm", 3)[2]
        whole, calls, arrays = submit(sandbox, "bench", n)
        results[kind] = (whole, calls, len(arrays))
        ids += arrays
    (cli, cli_calls, arrays), (pys, pys_calls, _) = results["local"], results["pyslurm"]
    print(f"submitting {n} held splits ({arrays} arrays each)")
    print(ratio_line("  assign_splits_to_workers, pyslurm vs CLI", pys, cli))
    print(ratio_line("  the client's submit calls alone, pyslurm vs CLI", pys_calls, cli_calls))
    return ids


def polling(active: int) -> list[int]:
    sandbox = env("local")
    with sandbox.sessions() as session:
        schedule_experiment(session, load_experiment(session, one_block("poll", active)))
        split_new_jobs(session)
        ids = [s.job_id for s in assign_splits_to_workers(session, sandbox.backend)]
    cli = sandbox.backend
    pys = dataclasses.replace(cli, client=PyslurmClient(LocalRunner(env=load_spec().env()), cli.config.timeouts))
    times: dict[str, list[float]] = {"cli": [], "pyslurm": [], "cli status": [], "pyslurm status": []}
    memories = {"cli": ActiveMemory(), "pyslurm": ActiveMemory()}
    with sandbox.sessions() as session:
        elements = [s for s in active_splits(session) if s.slurm_job_id]
        assert len(elements) == active, len(elements)
        for number in range(ROUNDS + 1):
            order = [("cli", cli), ("pyslurm", pys)][:: 1 if number % 2 else -1]
            for name, backend in order:
                started = time.perf_counter()
                report = poll_once(session, backend, memory=memories[name])
                spent = time.perf_counter() - started
                assert not report.events, report.events  # held: nothing changes
                started = time.perf_counter()
                view = backend.client.status(elements)
                status = time.perf_counter() - started
                assert len(view.pending) == active, (name, len(view.pending))
                if number:  # the first round of each warms up (worker start, imports, caches)
                    times[name].append(spent)
                    times[f"{name} status"].append(status)
    pys.client.close()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"polling {active} active (held) splits in {len(ids)} arrays, median of {ROUNDS} rounds")
    print(ratio_line("  poll_once, pyslurm vs CLI", median["pyslurm"], median["cli"]))
    print(ratio_line("  client.status() alone, pyslurm vs CLI", median["pyslurm status"], median["cli status"]))
    return ids


@dataclasses.dataclass(frozen=True)
class Element:
    slurm_job_id: str
    slurm_element_id: str
    submit_time: None = None


def finished_table(count: int) -> None:
    """status() over `count` elements that ran and finished (kept in slurmctld's table for MinJobAge).

    Here the job table is large: pyslurm's Jobs.load always asks slurmctld for SHOW_DETAIL
    (core/job/job.pyx), which squeue does not, and reads each record field by field in Python.
    """
    runner = LocalRunner(env=load_spec().env())
    script = "#!/bin/bash\ntrue\n"
    name = f"pc-finished-{uuid.uuid4().hex[:8]}"
    array = int(runner.run(["sbatch", "--parsable", "-J", name, "-p", "debug", "-t", "2", "--no-requeue",
                            "-o", "/dev/null", f"--array=0-{count - 1}"], stdin=script, timeout=60).check().stdout)
    deadline = time.monotonic() + 600
    while runner.run(["squeue", "-h", "-j", str(array), "-t", "PD,R,CG", "-o", "%i"], timeout=60).stdout.strip():
        if time.monotonic() > deadline:
            raise SystemExit(f"array {array} did not finish within 600 s")
        time.sleep(2)
    elements = [Element(str(array), f"{array}_{i}") for i in range(count)]
    clients = {"cli": SlurmClient(runner), "pyslurm": PyslurmClient(runner)}
    times: dict[str, list[float]] = {"cli": [], "pyslurm": []}
    views = {}
    for number in range(ROUNDS + 1):
        for name, client in list(clients.items())[:: 1 if number % 2 else -1]:
            started = time.perf_counter()
            views[name] = client.status(elements)
            if number:
                times[name].append(time.perf_counter() - started)
    clients["pyslurm"].close()
    same = {k: (r.state, r.exit_code, r.end) for k, r in views["cli"].records.items()} == {
        k: (r.state, r.exit_code, r.end) for k, r in views["pyslurm"].records.items()}
    total = len(runner.run(["squeue", "-h", "-t", "all", "-o", "%i"], timeout=60).stdout.split())
    print(f"status of {count} finished elements ({total} records in slurmctld's table), "
          f"median of {ROUNDS} rounds, same records: {same}")
    print(ratio_line("  client.status(), pyslurm vs CLI", statistics.median(times["pyslurm"]),
                     statistics.median(times["cli"])))


def main(active: int, n: int, finished: int) -> None:
    ids: list[int] = []
    try:
        ids += polling(active)
        ids += submission(n)
        if finished:
            finished_table(finished)
    finally:
        if ids:
            LocalRunner(env=load_spec().env()).run(["scancel", *map(str, ids)], timeout=60)


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:4]]
    main(*(arguments + [10_000, 2_000, 1_000][len(arguments):]))
