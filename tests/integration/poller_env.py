"""What the poller's real-cluster tests share: run the bridge loop with a deadline, read the audit trail.

Every wait here has a timeout: a test fails with what it saw instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from bridge_env import BridgeEnv
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.config import PollConfig
from bridge.declaration import load_experiment
from bridge.helpers import schedule_experiment
from bridge.models import Block, Experiment, Result, StateHistory
from bridge.runner import Runner
from bridge.sacct import SlurmRecord, parse_sacct
from bridge.slurm import sacct_argv
from poller.loop import BridgeLoop, CycleReport

FAST = PollConfig(min_interval=0.5, max_interval=2.0)
POLL = "[poll]\nmin_interval = 0.3\nmax_interval = 1.0\n"  # make_env(extra=POLL) for `run` processes
# A killed daemon's claim that Slurm never took is released in seconds, not after the default 20 s grace
# (bridge.claims): tests that kill `run` again and again would otherwise spend their lives waiting on it.
FAST_CLAIMS = "[claims]\nmisses = 2\ngrace = 2.0\n"
REPO = Path(__file__).resolve().parents[2]
FINAL = {"D", "F"}


def schedule(env: BridgeEnv, declaration: dict) -> int:
    """Add and schedule an experiment (the loop splits and submits it); its id."""
    with env.sessions() as session:
        experiment = load_experiment(session, declaration)
        schedule_experiment(session, experiment)
        return experiment.id


def status(env: BridgeEnv, experiment_id: int) -> str:
    with env.sessions() as session:
        return session.get(Experiment, experiment_id).status.value


def run_loop(env: BridgeEnv, until: Callable[[Session], bool], timeout: float,
             on_cycle: Callable[[Session, CycleReport], None] | None = None,
             backend=None) -> BridgeLoop:
    """Run the real BridgeLoop until `until(session)`; TimeoutError past `timeout` seconds."""
    deadline = time.monotonic() + timeout

    def done(session: Session) -> bool:
        if until(session):
            return True
        if time.monotonic() > deadline:
            raise TimeoutError(f"loop did not reach its goal in {timeout:.0f} s: {describe(session)}")
        return False

    loop = BridgeLoop(env.sessions, backend or env.backend, FAST, on_cycle=on_cycle)
    loop.run(done=done)
    return loop


def finished(experiment_id: int) -> Callable[[Session], bool]:
    return lambda session: session.get(Experiment, experiment_id).status.value in FINAL


def describe(session: Session) -> str:
    """Experiments and blocks with their states, for failure messages."""
    parts = []
    for experiment in session.scalars(select(Experiment).order_by(Experiment.id)):
        blocks = ", ".join(f"{b.name}={b.status.value}" for b in experiment.blocks)
        splits = Counter(s.status.value for b in experiment.blocks if b.job for s in b.job.splits)
        parts.append(f"{experiment.name} {experiment.status.value} [{blocks}] splits {dict(splits)}")
    return "; ".join(parts)


def blocks(session: Session, experiment_id: int) -> dict[str, Block]:
    return {b.name: b for b in session.get(Experiment, experiment_id).blocks}


def results_of(session: Session, block: Block) -> list[Result]:
    return list(session.scalars(select(Result).where(Result.block_id == block.id).order_by(Result.split_index)))


def assert_failed_once(env: BridgeEnv, experiment_id: int, name: str, words: list[str], timed_out: bool,
                       split_id: int | None = None) -> None:
    """One split of block `name`, failed through on_split_fail with Slurm's reason; its rows gone, its Result kept.

    `split_id` picks the split's history when other experiments ran beside it (else it is the only one)."""
    with env.sessions() as session:
        assert status(env, experiment_id) == "F"
        failed = blocks(session, experiment_id)[name]
        assert failed.status.value == "F" and failed.job is None  # BEAT deletes the failed job's rows
        (result,) = results_of(session, failed)
        assert result.status != 0 and result.timed_out is timed_out, (result.system_error, result.timed_out)
        for word in words:
            assert word in (result.system_error or ""), result.system_error
        histories = split_history(session)
        (history,) = histories.values() if split_id is None else [histories[split_id]]
        assert history[0] == (None, "N", "split_new_jobs") and history[-1][1:] == ("F", "on_split_fail"), history
        assert [h[1] for h in history].count("F") == 1


def split_history(session: Session) -> dict[int, list[tuple[str | None, str, str]]]:
    """Every split's transitions in order: split id -> [(from, to, source)]."""
    rows = session.scalars(select(StateHistory).where(StateHistory.entity == "job_splits")
                           .order_by(StateHistory.id))
    history: dict[int, list[tuple[str | None, str, str]]] = {}
    for row in rows:
        history.setdefault(row.entity_id, []).append((row.from_status, row.to_status, row.source))
    return history


def sacct_elements(runner: Runner, since: datetime, job_ids=None, names=None,
                   ranges: bool = False, bare: bool = False, every_run: bool = False) -> list[SlurmRecord]:
    """sacct's element rows since `since`, for the arrays or job names given.

    With `ranges`, rows of never-started elements (`J_[a-b]`, expanded) are kept too;
    with `bare`, rows under a bare array id (an array cancelled before any element started);
    with `every_run`, one row per run of an element (`--duplicates`: a requeued one shows twice).
    """
    argv = sacct_argv(since, job_ids=list(job_ids or ()), names=list(names or ()))
    argv += ["--duplicates"] if every_run else []
    result = runner.run(argv, timeout=30).check()
    return [r for r in parse_sacct(result.stdout)
            if (r.is_element or (bare and r.step is None)) and (ranges or not r.pending_range)]


def squeue_left(runner: Runner, job_ids) -> list[str]:
    """Lines squeue still shows (pending or running) for the arrays: [] when nothing is left."""
    result = runner.run(["squeue", "-h", "-j", ",".join(map(str, job_ids)), "-o", "%i %T"], timeout=30)
    if not result.ok and "invalid job id" in result.stderr.lower():
        return []
    return [line for line in result.check().stdout.splitlines() if line.strip()]


def wait_for(what: str, probe: Callable[[], object], timeout: float, every: float = 0.5):
    """probe() until it returns something truthy; AssertionError naming `what` past the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout:.0f} s (last: {value!r})")
        time.sleep(every)


def tags_by_block(spool_dir: Path) -> dict[str, int]:
    """Every submission tag whose spool directory has a manifest -> the block id it was for."""
    tags = {}
    for manifest in sorted(Path(spool_dir).glob("*/manifest.jsonl")):
        header = manifest.read_text().split("\n", 1)[0]
        tags[manifest.parent.name] = json.loads(header)["configuration"]["block_id"]
    return tags


class Arrays:
    """An on_cycle hook that records every array the loop submitted: block id -> Slurm job ids."""

    def __init__(self) -> None:
        self.by_block: dict[int, list[int]] = {}

    def __call__(self, session: Session, report: CycleReport) -> None:
        from bridge.models import JobSplit

        for sub in report.submitted:
            block_id = session.get(JobSplit, sub.split_ids[0]).job.block_id
            self.by_block.setdefault(block_id, []).append(sub.job_id)

    @property
    def job_ids(self) -> list[int]:
        return sorted(j for ids in self.by_block.values() for j in ids)


def start_run(root: Path, log) -> subprocess.Popen:
    """`beat-bridge run` on root/bridge.toml as a real process, its output appended to `log`."""
    return subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", "--config", str(root / "bridge.toml")],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def tagged_arrays(runner: Runner, since: datetime, tags: dict[str, int], blocks: int,
                  timeout: float = 20.0, elements: int = 0) -> list[SlurmRecord]:
    """sacct's elements of the tagged arrays, once arrays of `blocks` distinct blocks show, and at least
    `elements` elements (sacct lags: a just-finished element shows for 2-3 s without its _N, not as one)."""
    return wait_for(f"arrays of {blocks} blocks and {elements} elements in sacct", lambda: (
        lambda rs: rs if len({tags[r.name] for r in rs}) >= blocks and len(rs) >= elements else None)(
        sacct_elements(runner, since, names=tags)), timeout=timeout)
