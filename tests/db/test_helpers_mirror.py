"""Mirrors: the same block in two experiments runs once and both follow the one execution."""

from __future__ import annotations

from dbsupport import OK, block, count, declare, get_block, splits_of, two_blocks

from bridge import helpers
from bridge.models import Job, JobSplit


def _pair(session):
    original = declare(session, two_blocks(name="original", author="alice"))
    mirror = declare(session, two_blocks(name="mirror", author="bob"))
    helpers.split_new_jobs(session)
    return original, mirror


def test_second_job_becomes_a_mirror(session):
    original, mirror = _pair(session)
    assert len(splits_of(session, original, "first")) == 1
    job = get_block(session, mirror, "first").job
    assert job.mirror is True and job.splits == []
    assert get_block(session, original, "first").job.key == job.key


def test_mirror_success_unblocks_both_experiments_with_one_execution(session):
    original, mirror = _pair(session)
    (split,) = splits_of(session, original, "first")
    helpers.on_split_started(session, split)
    assert get_block(session, mirror, "first").status == "P"
    session.refresh(mirror)
    assert mirror.status == "R"
    helpers.on_split_done(session, split, OK)
    for exp in (original, mirror):
        assert get_block(session, exp, "first").status == "C"
        assert get_block(session, exp, "second").job.runnable_date is not None
    new = helpers.split_new_jobs(session)
    assert len(new) == 1 and get_block(session, mirror, "second").job.mirror is True
    helpers.on_split_started(session, new[0])
    helpers.on_split_done(session, new[0], OK)
    for exp in (original, mirror):
        session.refresh(exp)
        assert exp.status == "D"
    assert count(session, Job) == 0


def test_mirror_failure_fails_both(session):
    original, mirror = _pair(session)
    (split,) = splits_of(session, original, "first")
    helpers.on_split_started(session, split)
    helpers.on_split_fail(session, split, {"status": 1, "system_error": "oom"})
    for exp in (original, mirror):
        session.refresh(exp)
        assert exp.status == "F"
        assert get_block(session, exp, "first").status == "F"
        assert get_block(session, exp, "second").status == "L"
    assert count(session, Job) == 0


def test_cancelling_the_original_hands_the_work_to_the_mirror(session):
    original, mirror = _pair(session)
    (split,) = splits_of(session, original, "first")
    helpers.on_split_started(session, split)
    helpers.cancel_experiment(session, original)
    assert helpers.process_newly_cancelled_experiments(session) == []
    session.refresh(original)
    assert original.status == "P"
    assert get_block(session, original, "first").status == "L"
    heir = get_block(session, mirror, "first").job
    assert heir.mirror is False and [s.id for s in heir.splits] == [split.id]
    session.refresh(split)
    assert split.status == "P"
    helpers.on_split_done(session, split, OK)
    first = get_block(session, mirror, "first")
    assert first.status == "C" and first.outputs[0].status == "C"
    assert get_block(session, mirror, "second").job.runnable_date is not None


def test_cancelling_the_mirror_leaves_the_original_alone(session):
    original, mirror = _pair(session)
    (split,) = splits_of(session, original, "first")
    helpers.on_split_started(session, split)
    helpers.cancel_experiment(session, mirror)
    assert helpers.process_newly_cancelled_experiments(session) == []
    session.refresh(mirror)
    assert mirror.status == "P" and get_block(session, mirror, "first").status == "L"
    session.refresh(split)
    assert split.status == "P"
    assert get_block(session, original, "first").outputs[0].status == "P"
    helpers.on_split_done(session, split, OK)
    assert get_block(session, original, "first").status == "C"
    assert count(session, JobSplit) == 0


def test_mark_similar_jobs_as_mirror_deletes_unsubmitted_splits(session):
    original = declare(session, two_blocks(name="a"))
    helpers.split_new_jobs(session)
    job = get_block(session, original, "first").job
    # a second job with the same key that got its own splits (e.g. split before the first)
    twin = declare(session, two_blocks(name="b"))
    twin_job = get_block(session, twin, "first").job
    twin_job.splits.append(JobSplit(split_index=0, status="N"))
    session.commit()
    marked = helpers.mark_similar_jobs_as_mirror(session, job)
    assert [m.id for m in marked] == [twin_job.id]
    session.refresh(twin_job)
    assert twin_job.mirror is True and twin_job.splits == []


def test_a_job_not_yet_runnable_is_not_made_a_mirror(session):
    a = declare(session, {"name": "a", "author": "a", "blocks": {"x": block()}})
    b = declare(session, {"name": "b", "author": "a", "blocks": {
        "y": block("pkg.y:f"), "x": block(dependencies=["y"])}})
    (split,) = [s for s in helpers.split_new_jobs(session) if s.job.block.experiment_id == a.id]
    helpers.mark_similar_jobs_as_mirror(session, split.job)
    waiting = get_block(session, b, "x").job
    assert waiting.mirror is False and waiting.runnable_date is None
    helpers.on_split_started(session, split)
    assert get_block(session, b, "x").status == "N"  # does not follow before its turn


def test_the_same_block_twice_in_one_experiment(session):
    twin = block(inputs={"in": {"dataset": "numbers", "size": 4}})
    exp = declare(session, {"name": "e", "author": "a", "blocks": {
        "a": twin, "b": dict(twin), "after": block("pkg.m:g", dependencies=["a", "b"])}})
    (split,) = helpers.split_new_jobs(session)
    helpers.on_split_started(session, split)
    helpers.on_split_fail(session, split, "boom")
    session.refresh(exp)
    assert exp.status == "F"
    assert [get_block(session, exp, n).status for n in ("a", "after", "b")] == ["F", "L", "F"]
    assert count(session, Job) == 0


def test_the_same_block_twice_in_one_experiment_runs_once(session):
    twin = block(inputs={"in": {"dataset": "numbers", "size": 4}})
    exp = declare(session, {"name": "e", "author": "a", "blocks": {
        "a": twin, "b": dict(twin), "after": block("pkg.m:g", dependencies=["a", "b"])}})
    (split,) = helpers.split_new_jobs(session)
    helpers.on_split_done(session, split, OK)
    assert get_block(session, exp, "after").job.runnable_date is not None
    (last,) = helpers.split_new_jobs(session)
    helpers.on_split_done(session, last, OK)
    session.refresh(exp)
    assert exp.status == "D"
