"""Cutting splits on the data index; candidates per queue, per author, oldest first."""

from __future__ import annotations

from cachefiles import write_complete
from dbsupport import block, declare, get_block, queue, splits_of

from bridge import cache, helpers
from bridge.submission_db import mark_splits_submitting, record_submission


def _ranges(session, exp, name):
    return [(s.start_index, s.end_index) for s in splits_of(session, exp, name)]


def test_one_slot_is_one_unsplit_split(session):
    exp = declare(session, {"name": "e", "author": "a", "blocks": {"b": block()}})
    helpers.split_new_jobs(session)
    assert _ranges(session, exp, "b") == [(None, None)]


def test_n_ranges_on_a_dataset(session):
    exp = declare(session, {"name": "e", "author": "a", "blocks": {
        "b": block(slots=3, inputs={"in": {"dataset": "d", "size": 10}})}})
    helpers.split_new_jobs(session)
    assert _ranges(session, exp, "b") == [(0, 3), (4, 6), (7, 9)]
    assert [s.split_index for s in splits_of(session, exp, "b")] == [0, 1, 2]


def test_fewer_ranges_than_slots(session):
    exp = declare(session, {"name": "e", "author": "a", "blocks": {
        "b": block(slots=4, inputs={"in": {"dataset": "d", "size": 2}})}})
    helpers.split_new_jobs(session)
    assert _ranges(session, exp, "b") == [(0, 0), (1, 1)]


def _chain(session, slots=2):
    return declare(session, {"name": "e", "author": "a", "blocks": {
        "first": block(),
        "second": block("pkg.m:g", slots=slots, inputs={"in": {"block": "first", "output": "out"}}),
    }})


def _finish_first(session, exp):
    helpers.split_new_jobs(session, max_split_errors=1)
    (split,) = splits_of(session, exp, "first")
    helpers.on_split_done(session, split, {"status": 0})


def test_ranges_from_upstream_index_files(session, cache_root):
    exp = _chain(session)
    _finish_first(session, exp)
    out = get_block(session, exp, "first").outputs[0].hash
    write_complete(cache_root, out, [(0, 1), (2, 3), (4, 5)])
    helpers.split_new_jobs(session, cache_root=str(cache_root))
    assert _ranges(session, exp, "second") == [(0, 2), (3, 5)]


def test_cache_root_is_read_at_call_time(session, cache_root, monkeypatch):
    exp = _chain(session)
    _finish_first(session, exp)
    write_complete(cache_root, get_block(session, exp, "first").outputs[0].hash, [(0, 3)])
    monkeypatch.setenv(cache.ENV_VAR, str(cache_root))
    helpers.split_new_jobs(session)
    assert _ranges(session, exp, "second") == [(0, 1), (2, 3)]


def test_missing_index_counts_errors_then_fails(session, cache_root):
    exp = _chain(session)
    _finish_first(session, exp)
    second = get_block(session, exp, "second")
    for expected in (1, 2):
        assert helpers.split_new_jobs(session, str(cache_root), max_split_errors=2) == []
        session.refresh(second.job)
        assert second.job.split_errors == expected
    helpers.split_new_jobs(session, str(cache_root), max_split_errors=2)
    session.refresh(exp)
    session.refresh(second)
    assert second.status == "F" and exp.status == "F" and second.job is None


def _experiment(session, name, author, slots=4, queue_name="cpu"):
    return declare(session, {"name": name, "author": author, "blocks": {
        "b": block(f"pkg.{name}:f", slots=slots, queue=queue_name)}})


def test_max_slots_per_user_with_two_authors(session):
    alice = _experiment(session, "e1", "alice")
    bob = _experiment(session, "e2", "bob")
    helpers.split_new_jobs(session)
    candidates = helpers.retrieve_candidate_splits_for_queue(session, queue(session))
    authors = [s.job.block.experiment.author for s in candidates]
    assert authors == ["alice", "alice", "bob", "bob"]
    mark_splits_submitting(session, candidates[:2], "t")
    record_submission(session, "t", 5)
    candidates = helpers.retrieve_candidate_splits_for_queue(session, queue(session))
    assert [s.job.block.experiment.author for s in candidates] == ["bob", "bob"]
    assert alice.id != bob.id


def test_oldest_runnable_first(session):
    old = _experiment(session, "old", "alice", slots=2, queue_name="big")
    new = _experiment(session, "new", "bob", slots=2, queue_name="big")
    helpers.split_new_jobs(session)
    candidates = helpers.retrieve_candidate_splits_for_queue(session, queue(session, "big"))
    assert [s.job.block.experiment_id for s in candidates] == [old.id, old.id, new.id, new.id]
    assert [s.split_index for s in candidates] == [0, 1, 0, 1]


def test_claimed_once(session):
    _experiment(session, "e", "alice", slots=2, queue_name="big")
    splits = helpers.split_new_jobs(session)
    assert len(mark_splits_submitting(session, splits, "a")) == 2
    assert mark_splits_submitting(session, splits, "b") == []
    recorded = record_submission(session, "a", "900")
    assert [s.slurm_element_id for s in recorded] == ["900_0", "900_1"]
    assert record_submission(session, "a", "901") == []


def test_a_split_failure_cancels_other_jobs_of_the_same_call(session, cache_root):
    exp = declare(session, {"name": "e", "author": "a", "blocks": {
        "first": block(),
        "second": block("pkg.m:g", slots=2, inputs={"in": {"block": "first", "output": "out"}}),
        "third": block("pkg.m:h", dependencies=["first"]),
    }})
    helpers.split_new_jobs(session)
    (split,) = splits_of(session, exp, "first")
    helpers.on_split_done(session, split, {"status": 0})  # second and third runnable, no index
    assert helpers.split_new_jobs(session, str(cache_root), max_split_errors=0) == []
    session.refresh(exp)
    assert exp.status == "F"
    assert get_block(session, exp, "second").status == "F"
    assert get_block(session, exp, "third").status == "L"


def test_array_index_offset(session):
    _experiment(session, "e", "alice", slots=3, queue_name="big")
    splits = helpers.split_new_jobs(session)
    mark_splits_submitting(session, splits[2:], "second-array")
    (split,) = record_submission(session, "second-array", 51, offset=2)
    assert (split.split_index, split.slurm_element_id) == (2, "51_0")
