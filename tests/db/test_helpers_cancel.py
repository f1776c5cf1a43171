"""Cancelling experiments: before start, after the first block, while running on Slurm."""

from __future__ import annotations

from dbsupport import block, count, declare, get_block, run_block, splits_of, two_blocks

from bridge import helpers
from bridge.models import Job, JobSplit
from bridge.submission_db import mark_splits_submitting, record_submission


def _submit(session, splits, slurm_id="123", tag="t1"):
    claimed = mark_splits_submitting(session, splits, tag)
    record_submission(session, tag, slurm_id)
    return claimed


def test_cancel_only_from_scheduled_or_running(session):
    exp = declare(session, two_blocks(), schedule=False)
    assert helpers.cancel_experiment(session, exp) is False
    assert exp.status == "P"


def test_cancel_before_start(session):
    exp = declare(session, two_blocks())
    helpers.split_new_jobs(session)
    assert helpers.cancel_experiment(session, exp) is True
    assert exp.status == "C"
    assert helpers.process_newly_cancelled_experiments(session) == []
    session.refresh(exp)
    assert exp.status == "P"
    assert [get_block(session, exp, n).status for n in ("first", "second")] == ["L", "L"]
    assert count(session, Job) == 0 and count(session, JobSplit) == 0


def test_cancel_after_first_block(session):
    exp = declare(session, two_blocks())
    run_block(session, exp, "first")
    helpers.cancel_experiment(session, exp)
    helpers.process_newly_cancelled_experiments(session)
    session.refresh(exp)
    assert exp.status == "P"
    assert get_block(session, exp, "first").status == "C"
    assert get_block(session, exp, "second").status == "L"
    # rescheduling only runs what is not cached
    helpers.schedule_experiment(session, exp)
    assert exp.status == "S" and get_block(session, exp, "first").status == "C"
    assert get_block(session, exp, "second").job.runnable_date is not None


def test_cancel_while_running(session):
    exp = declare(session, two_blocks(slots=2))
    helpers.split_new_jobs(session)
    running, waiting = splits_of(session, exp, "first")
    _submit(session, [running, waiting])
    helpers.on_split_started(session, running)
    helpers.cancel_experiment(session, exp)
    to_cancel = helpers.process_newly_cancelled_experiments(session)
    assert sorted(s.slurm_element_id for s in to_cancel) == ["123_0", "123_1"]
    assert {s.status for s in to_cancel} == {"K"}
    session.refresh(exp)
    assert exp.status == "C"
    # a lost scancel is retried: the cancelling splits come back until Slurm reports them
    assert len(helpers.process_newly_cancelled_experiments(session)) == 2
    helpers.on_split_cancelled(session, running)
    session.refresh(exp)
    assert exp.status == "C"
    helpers.on_split_cancelled(session, waiting)
    session.refresh(exp)
    first = get_block(session, exp, "first")
    assert exp.status == "P"
    assert first.status == "L" and first.outputs[0].status == "N"
    assert get_block(session, exp, "second").status == "L"
    assert count(session, Job) == 0


def test_cancel_reaches_a_split_being_submitted(session):
    exp = declare(session, {"name": "one", "author": "a", "blocks": {"b": block()}})
    (split,) = helpers.split_new_jobs(session)
    mark_splits_submitting(session, [split], "tag-x")  # sbatch not answered yet
    helpers.cancel_experiment(session, exp)
    assert helpers.process_newly_cancelled_experiments(session) == []
    session.refresh(split)
    assert split.status == "K"
    record_submission(session, "tag-x", 77)  # sbatch answered after all
    (again,) = helpers.process_newly_cancelled_experiments(session)
    assert again.slurm_element_id == "77_0"
    helpers.on_split_cancelled(session, again)
    session.refresh(exp)
    assert exp.status == "P"


def test_split_done_while_cancelling_keeps_the_result(session):
    exp = declare(session, {"name": "one", "author": "a", "blocks": {"b": block()}})
    (split,) = helpers.split_new_jobs(session)
    _submit(session, [split])
    helpers.on_split_started(session, split)
    helpers.cancel_experiment(session, exp)
    helpers.process_newly_cancelled_experiments(session)
    assert helpers.on_split_done(session, split, {"status": 0}) is True
    session.refresh(exp)
    b = get_block(session, exp, "b")
    assert exp.status == "P" and b.status == "C" and b.outputs[0].status == "C"
