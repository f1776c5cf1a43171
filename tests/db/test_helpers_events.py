"""Repeated, late and out-of-order events change nothing and raise nothing."""

from __future__ import annotations

import logging

from dbsupport import OK, block, count, declare, get_block, splits_of, two_blocks
from sqlalchemy import select

from bridge import helpers
from bridge.models import JobSplit, StateHistory


def _history(session):
    return count(session, StateHistory)


def _one_split(session):
    exp = declare(session, two_blocks(slots=2))
    helpers.split_new_jobs(session)
    return exp, splits_of(session, exp, "first")


def test_done_twice_is_a_noop(session, caplog):
    exp, (a, b) = _one_split(session)
    assert helpers.on_split_done(session, a, OK) is True
    before = _history(session)
    with caplog.at_level(logging.WARNING):
        assert helpers.on_split_done(session, a, OK) is False
    assert _history(session) == before
    assert "ignored" in caplog.text


def test_started_after_done_is_a_noop(session):
    exp, (a, b) = _one_split(session)
    helpers.on_split_done(session, a, OK)
    assert helpers.on_split_started(session, a) is False
    session.refresh(a)
    assert a.status == "C"


def test_done_after_cancelled_is_a_noop(session):
    exp, (a, b) = _one_split(session)
    helpers.cancel_experiment(session, exp)
    helpers.process_newly_cancelled_experiments(session)  # a, b never submitted: gone
    session.refresh(exp)
    assert exp.status == "P"
    assert helpers.on_split_done(session, a, OK) is False
    assert helpers.on_split_fail(session, b, "late") == []
    assert helpers.on_split_cancelled(session, b) == []
    session.refresh(exp)
    assert exp.status == "P"


def test_events_for_splits_deleted_with_their_finished_job(session, factory):
    exp = declare(session, {"name": "e", "author": "a", "blocks": {"b": block()}})
    (split,) = helpers.split_new_jobs(session)
    split_id = split.id
    with factory() as other:  # an object from another session, stale afterwards
        stale = other.get(JobSplit, split_id)
        helpers.on_split_done(session, split, OK)
        assert count(session, JobSplit) == 0
        before = _history(session)
        assert helpers.on_split_done(other, stale, OK) is False
        assert helpers.on_split_fail(other, stale, "late") == []
    for event in (helpers.on_split_started, helpers.on_split_cancelled):
        event(session, split)
        event(session, split_id)
    assert helpers.on_split_done(session, split, OK) is False
    assert _history(session) == before
    session.refresh(exp)
    assert exp.status == "D"


def test_fail_after_done_is_a_noop(session):
    exp, (a, b) = _one_split(session)
    helpers.on_split_done(session, a, OK)
    assert helpers.on_split_fail(session, a, "late") == []
    assert get_block(session, exp, "first").status == "P"  # done implies started


def test_failed_split_cancels_its_siblings(session):
    exp = declare(session, two_blocks(slots=3))
    helpers.split_new_jobs(session)
    a, b, c = splits_of(session, exp, "first")
    from bridge.submission_db import mark_splits_submitting, record_submission
    mark_splits_submitting(session, [a, b], "t")
    record_submission(session, "t", 42)
    helpers.on_split_started(session, a)
    to_cancel = helpers.on_split_fail(session, a, {"status": 1, "user_error": "bad"})
    assert [s.slurm_element_id for s in to_cancel] == ["42_1"]
    statuses = dict(session.execute(select(JobSplit.split_index, JobSplit.status)).all())
    assert statuses == {0: "F", 1: "K", 2: "L"}
    session.refresh(exp)
    assert exp.status == "F"
    helpers.on_split_cancelled(session, b)
    assert count(session, JobSplit) == 0
    helpers.on_split_done(session, b, OK)  # too late: nothing
    session.refresh(exp)
    assert exp.status == "F"


def test_unrequested_cancel_fails_the_block(session):
    exp, (a, b) = _one_split(session)
    helpers.on_split_started(session, a)
    helpers.on_split_cancelled(session, a)
    assert get_block(session, exp, "first").status == "F"
    session.refresh(exp)
    assert exp.status == "F"


def test_outputs_concatenated_and_statistics_summed(session):
    exp, (a, b) = _one_split(session)
    helpers.on_split_done(session, a, {**OK, "stdout": "a\n"})
    helpers.on_split_done(session, b, {**OK, "stdout": "b\n"})
    cached = get_block(session, exp, "first").outputs[0]
    assert cached.stdout == "a\nb\n"
    assert cached.statistics == {"cpu": {"user": 2.0}, "data": {"written": 20}}
