"""bridge.metrics' one GROUP BY: split rows by queue and state, on SQLite and PostgreSQL."""

from __future__ import annotations

from dbsupport import OK, block, declare, splits_of
from sqlalchemy import delete

from bridge import helpers
from bridge.metrics import NO_QUEUE, queue_names, split_counts
from bridge.models import Queue


def test_split_counts_group_the_live_jobs_splits_by_queue_and_state(session):
    first = declare(session, {"name": "e1", "author": "alice", "blocks": {"a": block(slots=3)}})
    second = declare(session, {"name": "e2", "author": "bob",
                               "blocks": {"b": block(slots=2, queue="big", parameters={"other": 1})}})
    helpers.split_new_jobs(session)
    a, b = splits_of(session, first, "a"), splits_of(session, second, "b")
    for split in (a[0], a[1], b[0]):
        helpers.on_split_started(session, split)
    helpers.on_split_done(session, a[1], OK)  # its siblings still run: the job and its rows stay
    session.commit()

    assert split_counts(session) == {("cpu", "P"): 1, ("cpu", "C"): 1, ("cpu", "N"): 1,
                                     ("big", "P"): 1, ("big", "N"): 1}
    assert sorted(queue_names(session)) == ["big", "cpu"]


def test_a_block_whose_queue_row_was_deleted_counts_under_no_queue(session):
    declare(session, {"name": "e", "author": "alice", "blocks": {"a": block(slots=2, queue="big")}})
    helpers.split_new_jobs(session)
    session.execute(delete(Queue).where(Queue.name == "big"))  # blocks.queue_id is SET NULL
    session.commit()
    assert split_counts(session) == {(NO_QUEUE, "N"): 2}
