"""The submitter's database primitives, dependents, and jobs whose outputs got cached meanwhile."""

from __future__ import annotations

from dbsupport import block, count, declare, get_block, run_block, splits_of, two_blocks

from bridge import helpers
from bridge.models import Job, Worker
from bridge.submission_db import (
    mark_splits_submitting,
    record_slurm_state,
    record_split_node,
    record_submission,
    release_submission,
    scancel_targets,
)


def _one(session, name="e"):
    exp = declare(session, {"name": name, "author": "a", "blocks": {"b": block(slots=2)}})
    return exp, helpers.split_new_jobs(session)


def test_release_gives_the_claim_back(session):
    exp, splits = _one(session)
    mark_splits_submitting(session, splits, "t")
    assert helpers.retrieve_candidate_splits_for_queue(session, get_block(session, exp, "b").queue) == []
    assert release_submission(session, "t") == 2
    again = helpers.retrieve_candidate_splits_for_queue(session, get_block(session, exp, "b").queue)
    assert [s.id for s in again] == [s.id for s in splits]


def test_release_of_a_cancelled_claim_finishes_the_cancel(session):
    exp, splits = _one(session)
    mark_splits_submitting(session, splits, "t")
    helpers.cancel_experiment(session, exp)
    helpers.process_newly_cancelled_experiments(session)
    release_submission(session, "t")
    session.refresh(exp)
    assert exp.status == "P" and count(session, Job) == 0


def test_node_and_state(session):
    session.add(Worker(name="n1", cores=4, memory=1000, active=True))
    session.commit()
    exp, (a, b) = _one(session)
    assert record_split_node(session, a, "n1") is True
    session.refresh(a)
    assert a.slurm_node == "n1" and a.worker.name == "n1"
    assert record_slurm_state(session, b, state="RUNNING", exit_code="0:0") is True
    session.refresh(b)
    assert (b.slurm_state, b.slurm_exit_code, b.worker) == ("RUNNING", "0:0", None)


def test_scancel_targets_are_cancelling_splits_slurm_has_not_reported_final(session):
    exp, splits = _one(session)
    mark_splits_submitting(session, splits, "t")
    record_submission(session, "t", 9)
    helpers.cancel_experiment(session, exp)
    helpers.process_newly_cancelled_experiments(session)
    assert scancel_targets(session) == (["9_0", "9_1"], [])
    record_slurm_state(session, splits[0], state="CANCELLED by 0")
    assert scancel_targets(session) == (["9_1"], [])  # final on Slurm: nothing left to stop


def test_scancel_targets_name_the_tag_of_a_cancelled_claim_without_an_array_id(session):
    exp, splits = _one(session)
    mark_splits_submitting(session, splits, "bb-unknown")
    helpers.cancel_experiment(session, exp)
    helpers.process_newly_cancelled_experiments(session)
    assert scancel_targets(session) == ([], ["bb-unknown"])


def test_update_dependent_jobs(session):
    exp = declare(session, two_blocks())
    first, second = get_block(session, exp, "first"), get_block(session, exp, "second")
    assert helpers.update_dependent_jobs(session, first.job) == []  # first not done yet
    first.status = "C"
    session.commit()
    (made,) = helpers.update_dependent_jobs(session, first)
    assert made.block_id == second.id and made.runnable_date is not None
    assert helpers.update_dependent_jobs(session, first) == []  # already runnable


def test_job_cached_meanwhile_is_done_without_splits(session):
    a = declare(session, {"name": "a", "author": "a", "blocks": {"x": block()}})
    b = declare(session, {"name": "b", "author": "a", "blocks": {
        "y": block("pkg.y:f"), "x": block(dependencies=["y"])}})  # same x, waits for y
    run_block(session, a, "x")
    assert get_block(session, b, "x").job.runnable_date is None
    run_block(session, b, "y")  # x becomes runnable: its outputs are cached by now
    assert helpers.split_new_jobs(session) == []
    session.refresh(b)
    assert b.status == "D" and get_block(session, b, "x").status == "C"
    assert splits_of(session, b, "x") == [] and count(session, Job) == 0
