"""Scheduling and the success/failure paths, as BEAT's backend tests have them."""

from __future__ import annotations

import pytest
from dbsupport import count, declare, get_block, run_block, splits_of, two_blocks
from sqlalchemy import select

from bridge import helpers
from bridge.models import Job, JobSplit, StateHistory
from bridge.scheduling import SchedulingError


def test_schedule_makes_first_block_runnable(session):
    exp = declare(session, two_blocks())
    assert exp.status == "S"
    first, second = get_block(session, exp, "first"), get_block(session, exp, "second")
    assert first.status == "N" and second.status == "N"
    assert first.job.runnable_date is not None
    assert second.job.runnable_date is None
    assert first.job.key != second.job.key


def test_success_path_two_blocks(session):
    exp = declare(session, two_blocks())
    run_block(session, exp, "first")
    first = get_block(session, exp, "first")
    assert first.status == "C" and first.outputs[0].status == "C"
    assert first.outputs[0].statistics == {"cpu": {"user": 1.0}, "data": {"written": 10}}
    second = get_block(session, exp, "second")
    assert second.job.runnable_date is not None
    assert exp.status == "R"
    run_block(session, exp, "second")
    session.refresh(exp)
    assert exp.status == "D" and exp.end_date is not None
    assert count(session, Job) == 0 and count(session, JobSplit) == 0


def test_failure_path_cancels_dependent(session):
    exp = declare(session, two_blocks())
    helpers.split_new_jobs(session)
    (split,) = splits_of(session, exp, "first")
    helpers.on_split_started(session, split)
    helpers.on_split_fail(session, split, {"status": 1, "user_error": "boom"})
    session.refresh(exp)
    assert exp.status == "F"
    first, second = get_block(session, exp, "first"), get_block(session, exp, "second")
    assert first.status == "F" and second.status == "L"
    assert first.outputs[0].status == "N" and first.outputs[0].error_report == "boom"
    assert count(session, Job) == 0


def test_fail_with_plain_string_is_system_error(session):
    exp = declare(session, two_blocks())
    helpers.split_new_jobs(session)
    (split,) = splits_of(session, exp, "first")
    helpers.on_split_fail(session, split, "node died")
    first = get_block(session, exp, "first")
    assert first.status == "F" and first.outputs[0].error_report == "node died"


def test_schedule_without_queue_is_an_error_and_changes_nothing(session):
    exp = declare(session, two_blocks(), schedule=False)
    get_block(session, exp, "second").queue = None
    session.commit()
    with pytest.raises(SchedulingError, match="second"):
        helpers.schedule_experiment(session, exp)
    assert exp.status == "P"
    assert count(session, Job) == 0


def test_schedule_only_from_pending(session):
    exp = declare(session, two_blocks())
    helpers.schedule_experiment(session, exp)  # already S: no-op
    assert count(session, Job) == 2


def test_all_cached_experiment_is_done_at_once(session):
    exp = declare(session, two_blocks())
    run_block(session, exp, "first")
    run_block(session, exp, "second")
    again = declare(session, two_blocks(name="again"))
    assert again.status == "D"
    assert count(session, Job) == 0


def test_partly_cached_experiment_skips_done_block(session):
    exp = declare(session, two_blocks())
    run_block(session, exp, "first")
    other = two_blocks(name="other")
    other["blocks"]["second"]["parameters"] = {"different": True}
    again = declare(session, other)
    assert again.status == "S"
    assert get_block(session, again, "first").status == "C"
    second = get_block(session, again, "second")
    assert second.status == "N" and second.job.runnable_date is not None


def test_does_not_reassign(session):
    exp = declare(session, two_blocks())
    helpers.split_new_jobs(session)
    splits = helpers.retrieve_candidate_splits_for_queue(session, get_block(session, exp, "first").queue)
    assert len(splits) == 1
    helpers.on_split_started(session, splits[0])
    assert helpers.retrieve_candidate_splits_for_queue(session, splits[0].job.block.queue) == []
    assert helpers.split_new_jobs(session) == []


def test_history_records_every_transition(session):
    exp = declare(session, two_blocks())
    run_block(session, exp, "first")
    rows = session.scalars(select(StateHistory).where(StateHistory.entity == "experiments")).all()
    assert [(r.from_status, r.to_status) for r in rows] == [(None, "P"), ("P", "S"), ("S", "R")]
    split_rows = session.scalars(select(StateHistory).where(StateHistory.entity == "job_splits")).all()
    assert [(r.from_status, r.to_status) for r in split_rows] == [(None, "N"), ("N", "P"), ("P", "C")]


def test_configuration_for_split(session, cache_root):
    exp = declare(session, two_blocks(slots=2))
    helpers.split_new_jobs(session)
    split = splits_of(session, exp, "first")[1]
    config = helpers.get_configuration_for_split(split)
    assert config["range"] == [2, 3] and config["split_index"] == 1 and config["nb_splits"] == 2
    assert config["algorithm"] == "pkg.mod:func"
    assert set(config["outputs"]["out"]) == {"hash", "path"}
    assert config["inputs"]["in"]["dataset"] == "numbers"
    assert helpers.get_configuration_for_split(split, str(cache_root))["cache"] == str(cache_root)
