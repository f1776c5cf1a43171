"""When Slurm misbehaves: slurmdbd stopped mid-run, and squeue and sacct both failing.

The first is real (the cluster's slurmdbd is stopped and started again). The
second is injected with a runner wrapper, because the real cluster cannot make
squeue *and* sacct fail on demand without stopping slurmctld under other users:
squeue and sacct answer "Unable to contact slurm controller"; everything else
(sbatch, scancel, scontrol) reaches the real cluster.
"""

from __future__ import annotations

import threading
import time

import pytest
from bridge_env import block, make_env, wait_sacct
from poller_env import Arrays, blocks, finished, results_of, run_loop, schedule, split_history, status, wait_for
from sqlalchemy import func, select

from bridge.models import JobSplit, StateHistory, utcnow
from bridge.runner import CommandResult
from poller.loop import run_cycle
from poller.poll import PollError, poll_once

UNREACHABLE = "slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n"


def _from(name: str) -> dict:
    return {"in": {"block": name, "output": "out"}}


@pytest.mark.exclusive("stops the shared slurmdbd")
def test_slurmdbd_stopped_mid_run_causes_no_false_failure_and_the_run_completes(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm)
    experiment_id = schedule(env, {"name": "dbd-outage", "author": "gina", "blocks": {
        "a": block("scale", slots=2, size=6, parameters={"factor": 13}),
        "b": block("sleep_then_copy", slots=2, inputs=_from("a"), parameters={"seconds": 4}),
        "c": block("total", slots=1, inputs=_from("b")),
    }})
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            run_loop(env, finished(experiment_id), timeout=120)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        wait_for("block b running", lambda: _block_status(env, experiment_id, "b") == "P", timeout=40)
        assert slurm_cluster.stop_daemon("slurmdbd")
        down = utcnow()
        assert not slurm.run(["sacct", "-X", "-n", "-j", "1"], timeout=30).ok  # accounting really is down
        time.sleep(10)  # b's elements end, c is submitted and runs, all while accounting is down
    finally:
        up = utcnow()
        slurm_cluster.start_daemon("slurmdbd")
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors, errors
    assert status(env, experiment_id) == "D"
    with env.sessions() as session:
        for b in blocks(session, experiment_id).values():
            assert all(r.status == 0 and not r.system_error for r in results_of(session, b)), b.name
        history = split_history(session)
        assert all(t != "F" for steps in history.values() for _, t, _ in steps), history
        during = session.scalars(select(StateHistory).where(
            StateHistory.entity == "job_splits", StateHistory.at > down, StateHistory.at < up)).all()
        assert {(h.from_status, h.to_status) for h in during} >= {("P", "C")}, "no progress while slurmdbd was down"


class Unreachable:
    """Fault injection: squeue and sacct fail as when slurmctld cannot be reached; the rest is real."""

    def __init__(self, real) -> None:
        self.real, self.broken, self.refused = real, True, 0

    def run(self, argv, stdin=None, timeout=60.0):
        if self.broken and argv[0] in ("squeue", "sacct"):
            self.refused += 1
            return CommandResult(tuple(argv), 1, "", UNREACHABLE)
        return self.real.run(argv, stdin=stdin, timeout=timeout)


def _snapshot(env) -> tuple:
    with env.sessions() as session:
        splits = session.execute(select(JobSplit.id, JobSplit.status, JobSplit.slurm_state, JobSplit.start_time,
                                        JobSplit.end_time).order_by(JobSplit.id)).all()
        return tuple(splits), session.scalar(select(func.count(StateHistory.id)))


def test_squeue_and_sacct_failing_change_nothing_and_the_run_recovers_when_they_return(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm)
    experiment_id = schedule(env, {"name": "unreachable", "author": "gina", "blocks": {
        "a": block("scale", slots=2, size=4, parameters={"factor": 17}),
        "b": block("square", slots=2, inputs=_from("a")),
    }})
    with env.sessions() as session:
        (submission,) = run_cycle(session, env.backend).submitted  # a's array, with the real runner
    # the elements really finish: a working poll would now fire started and done for both
    records = wait_sacct(slurm, [submission.job_id], lambda rs: len(rs) == 2 and all(r.end for r in rs))
    assert {r.state for r in records} == {"COMPLETED"}
    before = _snapshot(env)
    unreachable = Unreachable(slurm)
    broken = env.backend.with_runner(unreachable)

    with env.sessions() as session:
        with pytest.raises(PollError, match="Unable to contact slurm controller"):
            poll_once(session, broken)
    assert _snapshot(env) == before
    cycles = []
    run_loop(env, lambda s: cycles.append(1) or len(cycles) >= 4, timeout=30, backend=broken)
    assert _snapshot(env) == before and unreachable.refused >= 8  # squeue and sacct, every cycle
    assert status(env, experiment_id) == "S"

    unreachable.broken = False  # Slurm is back: the same loop object's runner now answers
    arrays = Arrays()
    run_loop(env, finished(experiment_id), timeout=60, backend=broken, on_cycle=arrays)
    assert status(env, experiment_id) == "D"
    assert len(arrays.job_ids) == 1  # only b was submitted after the outage; a was not submitted again
    with env.sessions() as session:
        history = split_history(session)
        assert len(history) == 4 and all(h[-1][1] == "C" and len(h) == len(set(h)) for h in history.values()), history


def _block_status(env, experiment_id: int, name: str) -> str:
    with env.sessions() as session:
        return blocks(session, experiment_id)[name].status.value


class SqueueForgot:
    """Fault injection: squeue has forgotten every array (as past MinJobAge, 300 s here, or after a
    slurmctld restart), so the poller must rely on sacct alone; sacct and the rest are real."""

    def __init__(self, real) -> None:
        self.real = real

    def run(self, argv, stdin=None, timeout=60.0):
        if argv[0] == "squeue" and "-O" in argv:  # the poller's squeue; the tag look-up's stays real
            return CommandResult(tuple(argv), 1, "", "slurm_load_jobs error: Invalid job id specified\n")
        return self.real.run(argv, stdin=stdin, timeout=timeout)


@pytest.mark.exclusive("stops the shared slurmdbd")
def test_slurmdbd_down_while_elements_end_with_sacct_as_the_only_source_gives_no_false_failure(
        tmp_path, slurm_cluster, slurm):
    """Elements end while slurmdbd is down (sacct fails), and its rows read FAILED/End=Unknown for a
    while after it returns (slurm-notes.md): none of this may read as a failure."""
    env = make_env(tmp_path, slurm_cluster, slurm)
    experiment_id = schedule(env, {"name": "dbd-only", "author": "gina", "blocks": {
        # long enough that sacct (which sees a start 1-3 s late) cannot also see the end before the outage
        "a": block("sleep_then_copy", slots=2, size=4, parameters={"seconds": 10}),
        "b": block("total", slots=1, inputs=_from("a")),
    }})
    forgot = env.backend.with_runner(SqueueForgot(slurm))
    errors: list[BaseException] = []
    loops = []

    def loop() -> None:
        try:
            loops.append(run_loop(env, finished(experiment_id), timeout=120, backend=forgot))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(e)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        wait_for("block a running (seen through sacct)", lambda: _block_status(env, experiment_id, "a") == "P",
                 timeout=40)
        assert slurm_cluster.stop_daemon("slurmdbd")
        time.sleep(14)  # a's elements end unseen: sacct fails, squeue "forgot"
        assert _block_status(env, experiment_id, "a") == "P"  # nothing was concluded meanwhile
    finally:
        slurm_cluster.start_daemon("slurmdbd")
    thread.join(timeout=120)
    assert not thread.is_alive() and not errors, errors
    assert status(env, experiment_id) == "D"
    # with no source at all, the cycles were reported as failed (so the loop backed off), not as quiet
    assert loops[0].failures >= 2, loops[0].failures
    with env.sessions() as session:
        history = split_history(session)
        assert len(history) == 3 and all(t != "F" for h in history.values() for _, t, _ in h), history
