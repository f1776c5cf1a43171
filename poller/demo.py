"""`beat-bridge demo`: two experiments through the local cluster, with live progress and an audit.

The demo writes its own configuration and a fresh SQLite database in a new run
directory, adds the two example experiments (bridge.examples.demo_experiments)
and, when beat.backend.python is installed, a BEAT-native one (bridge.examples.beat_demo),
runs the bridge loop until both are finished, and prints per block its state,
nodes, elapsed time and sacct job ids, read back from sacct as an admin would.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.app import App, open_app
from bridge.declaration import load_experiment
from bridge.declaration_beat import BeatSite
from bridge.devcluster.sandbox import write_config
from bridge.errors import CommandError
from bridge.examples import beat_demo
from bridge.examples.demo_experiments import declarations, expected_totals
from bridge.hashing import cache_path
from bridge.helpers import schedule_experiment
from bridge.models import FINAL_EXPERIMENT, Experiment, JobSplit, Result
from bridge.queues import read_cluster, sync_queues, sync_workers
from bridge.sacct import SlurmRecord
from bridge.sbatch_scripts.element_io import IOStats, read_cached
from bridge.slurm_client import SlurmClient, utc_naive_now
from poller.loop import BridgeLoop, CycleReport
from poller.poll import active_splits

QUEUES = """# the demo's queues on the local cluster's partitions
[queues.default]
partition = "cpu"
memory_limit = 500
time_limit = 10
cores_per_slot = 1
max_slots_per_user = 8
environments = ["Python-3.11"]

[queues.long]
partition = "long"
memory_limit = 500
time_limit = 60
cores_per_slot = 1
max_slots_per_user = 8
environments = ["Python-3.11"]
"""



@dataclass
class DemoRun:
    """What the demo did and measured."""

    root: Path
    wall: float = 0.0
    cycles: int = 0
    squeue_calls: int = 0
    sacct_calls: int = 0
    arrays: dict[int, list[int]] = field(default_factory=dict)  # block id -> sacct job ids
    elements: int = 0  # array elements submitted
    latencies: list[float] = field(default_factory=list)  # sacct End -> on_split_done, seconds
    statuses: dict[str, str] = field(default_factory=dict)  # experiment name -> final status letter
    report: Path | None = None  # the run's HTML audit report

    @property
    def all_done(self) -> bool:
        return bool(self.statuses) and all(status == "D" for status in self.statuses.values())


def make_run_dir(base: Path, slurm_conf: Path, interval: float = 1.0, runner: str = "local") -> Path:
    """A new run directory with the demo's bridge.toml (its `runner`: "local" or "pyslurm") and queues.toml."""
    root = base / datetime.now().strftime("run-%Y%m%d-%H%M%S-%f")
    root.mkdir(parents=True)
    prefix = beat_demo.test_prefix()  # the BEAT-native experiment runs when beat.backend.python is installed
    beat = f"beat_prefix = {json.dumps(str(prefix))}\n" if prefix else ""  # a JSON string is a TOML one
    write_config(root, slurm_conf, QUEUES, extra=f"{beat}[poll]\nmin_interval = {interval}\nmax_interval = 5.0\n",
                 runner=runner)
    return root


def run_demo(root: Path, say: Callable[[str], None] = print, timeout: float = 600.0) -> DemoRun:
    """Add, schedule and run the demo experiments; print progress; return the measurements."""
    app = open_app(root / "bridge.toml")
    run = DemoRun(root)
    with app.sessions() as session:
        sync_queues(session, app.config.queues)
        sync_workers(session, read_cluster(app.client).nodes)
        site = BeatSite(app.config.beat_prefix, app.config.cache_root)
        beat = [beat_demo.declaration()] if app.config.beat_prefix else []
        ids = [load_experiment(session, d, app.config.limits, site).id for d in declarations() + beat]
        for experiment_id in ids:
            schedule_experiment(session, session.get(Experiment, experiment_id))
    say(f"demo in {root}: experiments {ids} scheduled")
    since = utc_naive_now() - timedelta(minutes=1)
    started = time.monotonic()
    progress = Progress(say, started)

    def on_cycle(session: Session, report: CycleReport) -> None:
        for sub in report.submitted:
            block_id = session.get(JobSplit, sub.split_ids[0]).job.block_id
            run.arrays.setdefault(block_id, []).append(sub.job_id)
            run.elements += len(sub.split_ids)
        progress.show(session, ids, report)

    def finished(session: Session) -> bool:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"demo experiments not finished after {timeout:.0f} s (see {root})")
        # finished, and nothing left on Slurm (a failed block's siblings are scancelled after it fails)
        return all(session.get(Experiment, i).status in FINAL_EXPERIMENT for i in ids) and not active_splits(session)

    loop = BridgeLoop(app.sessions, app.backend, app.config.poll, on_cycle=on_cycle)
    loop.run(done=finished)
    run.wall, run.cycles = time.monotonic() - started, loop.cycles
    run.squeue_calls, run.sacct_calls = loop.squeue_calls, loop.sacct_calls
    summarise(app, run, ids, say)
    run.report = audit_report(app, root / "audit.html", since)
    say(f"\naudit report: {run.report}")
    return run


def audit_report(app: App, path: Path, since: datetime, settle: float = 20.0) -> Path:
    """The run's HTML audit (`beat-bridge audit --format html`), once sacct has settled its snapshots."""
    from bridge.audit_report import ReportRequest, build
    from bridge.models_audit import AccountingSnapshot
    from bridge.snapshots import refresh

    deadline = time.monotonic() + settle
    with app.sessions() as session:
        while time.monotonic() < deadline:
            refresh(session, app.client)
            if session.scalar(select(AccountingSnapshot.id).where(AccountingSnapshot.status == "pending")) is None:
                break
            time.sleep(0.5)
    text, _ = build(app, ReportRequest(since, utc_naive_now() + timedelta(minutes=1), by="block", fmt="html"))
    path.write_text(text, encoding="utf-8")
    return path


class Progress:
    """One line per experiment, printed when it changes: blocks done/total and splits by state."""

    def __init__(self, say: Callable[[str], None], started: float) -> None:
        self.say, self.started = say, started
        self.last: dict[int, str] = {}

    def show(self, session: Session, ids: list[int], report: CycleReport) -> None:
        for experiment_id in ids:
            line = progress_line(session, session.get(Experiment, experiment_id))
            if self.last.get(experiment_id) != line:
                self.last[experiment_id] = line
                self.say(f"[{time.monotonic() - self.started:6.1f} s] {line}")
        if report.error:
            self.say(f"[{time.monotonic() - self.started:6.1f} s] Slurm error, retrying: {report.error}")


def progress_line(session: Session, experiment: Experiment) -> str:
    """`alice/diamond R: blocks 2/5 done; splits queued 2, running 3` (the splits that exist now)."""
    done = sum(1 for b in experiment.blocks if b.status.value == "C")
    states = Counter(s.status.value for b in experiment.blocks if b.job for s in b.job.splits)
    names = {"N": "queued", "P": "running", "C": "done", "F": "failed", "L": "cancelled", "K": "cancelling"}
    splits = ", ".join(f"{names[k]} {v}" for k, v in sorted(states.items())) or "none on Slurm"
    return f"{experiment.author}/{experiment.name} {experiment.status.value}: " \
           f"blocks {done}/{len(experiment.blocks)} done; splits {splits}"


def summarise(app: App, run: DemoRun, ids: list[int], say: Callable[[str], None]) -> None:
    """Per block: state, nodes, elapsed, sacct ids — from sacct; then the callback latency."""
    records = audit(app.client, [j for jobs in run.arrays.values() for j in jobs], run.elements)
    with app.sessions() as session:
        for experiment_id in ids:
            experiment = session.get(Experiment, experiment_id)
            run.statuses[experiment.name] = experiment.status.value
            say(f"\n{experiment.author}/{experiment.name}: {experiment.status.value}  (total = "
                f"{total_of(app, experiment)}, expected {_expected(experiment.name)})")
            say(f"  {'block':8} {'state':5} {'elapsed':>8}  {'nodes':8} sacct job ids   (from sacct)")
            for block in sorted(experiment.blocks, key=lambda b: b.execution_order):
                jobs = run.arrays.get(block.id, [])
                mine = [r for r in records if r.array_job_id in jobs]
                nodes = sorted({r.node_list for r in mine})
                elapsed = _elapsed(mine)
                shown = ",".join(map(str, jobs)) or "(mirror: ran once, in the other experiment)"
                say(f"  {block.name:8} {block.status.value:5} {elapsed:7.1f}s  {','.join(nodes) or '-':8} {shown}")
        run.latencies = callback_latencies(session, run, records)
    lat = run.latencies
    say(f"\nwall time {run.wall:.1f} s, {run.cycles} cycles, "
        f"{run.squeue_calls} squeue and {run.sacct_calls} sacct calls; "
        f"element end -> callback: median {statistics.median(lat) if lat else 0:.2f} s, "
        f"max {max(lat) if lat else 0:.2f} s over {len(lat)} splits")


def audit(client: SlurmClient, job_ids: list[int], elements: int, settle: float = 15.0) -> list[SlurmRecord]:
    """The arrays' finished elements as sacct records them, once sacct has all `elements` (it lags)."""
    deadline = time.monotonic() + settle
    while True:
        try:
            records = client.accounting(sorted(job_ids), utc_naive_now() - timedelta(hours=2))
        except CommandError:  # slurmdbd busy or away: try again until the deadline
            records = []
        found = [r for r in records if r.is_element and r.end is not None]
        if len(found) >= elements or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _elapsed(records: list[SlurmRecord]) -> float:
    """From the block's first element start to its last element end, as sacct says."""
    starts = [r.start for r in records if r.start]
    ends = [r.end for r in records if r.end]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0


def callback_latencies(session: Session, run: DemoRun, records: list[SlurmRecord]) -> list[float]:
    """Seconds from an element's End in sacct to the Result our on_split_done stored for it."""
    by_element = {(r.array_job_id, r.array_task_id): r for r in records}
    latencies = []
    for result in session.scalars(select(Result).where(Result.status == 0)):
        for job_id in run.arrays.get(result.block_id, []):
            record = by_element.get((job_id, result.split_index))
            if record and record.end:
                latencies.append((result.creation_date - record.end).total_seconds())  # both naive UTC
    return latencies


def _expected(name: str) -> int:
    return beat_demo.expected_total() if name == beat_demo.NAME else expected_totals()[name]


def total_of(app: App, experiment: Experiment) -> object:
    """The value computed by the experiment's `total` block (BEAT-native: the sum of `sum`), read from the cache."""
    if experiment.name == beat_demo.NAME:
        block = next(b for b in experiment.blocks if b.name == "sum")
        return beat_demo.total(Path(app.config.cache_root), cache_path(block.outputs[0].hash),
                               app.config.beat_prefix) if block.status.value == "C" else None
    block = next((b for b in experiment.blocks if b.name == "total"), None)
    if block is None or block.status.value != "C":
        return None
    values = read_cached(Path(app.config.cache_root), cache_path(block.outputs[0].hash), None, IOStats())
    return values[0] if values else None

