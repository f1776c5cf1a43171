"""`queues sync` under BEAT's rule, on SQLite and PostgreSQL: live work blocks removing or narrowing its queue."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dbsupport import block, declare, get_block, queue, two_blocks
from sqlalchemy import select

from bridge.models import Queue, QueueVersion
from bridge.queue_settings import from_row, mapping_version
from bridge.queues import SyncRefused, sync_queues
from bridge.queues_config import EnvironmentRef, QueueConfig

ENV = (EnvironmentRef("python", "3.11"),)
# what the `session` fixture (tests/db/conftest.py) made with upsert_queue
CPU = QueueConfig("cpu", "debug", memory_limit=1000, time_limit=10, cores_per_slot=1, max_slots_per_user=2,
                  environments=ENV)
BIG = QueueConfig("big", "debug", memory_limit=1000, time_limit=10, cores_per_slot=1, max_slots_per_user=100,
                  environments=ENV)


def mapping(*queues: QueueConfig) -> dict[str, QueueConfig]:
    return {q.name: q for q in queues}


def test_the_same_file_changes_nothing_and_stores_each_version(session):
    assert sync_queues(session, mapping(CPU, BIG)) == []
    rows = session.scalars(select(Queue).order_by(Queue.name)).all()
    assert [r.version for r in rows] == [mapping_version(from_row(r)) for r in rows]
    assert {v.version for v in session.scalars(select(QueueVersion))} == {r.version for r in rows}


def test_narrowing_a_queue_live_work_uses_is_refused_and_nothing_changes(session):
    experiment = declare(session, two_blocks())
    with pytest.raises(SyncRefused) as refused:
        sync_queues(session, mapping(replace(CPU, memory_limit=500, partition="long"), BIG))
    (change,) = refused.value.refused
    assert change.queue == "cpu" and change.narrowing == ("partition debug -> long", "memory_limit 1000 -> 500")
    assert [(u.experiment_id, u.block) for u in change.affected] == [(experiment.id, "first"),
                                                                     (experiment.id, "second")]
    assert f"experiment {experiment.id} (alice/exp) block 'first'" in str(refused.value)
    session.expire_all()
    assert (queue(session).partition, queue(session).memory_limit) == ("debug", 1000)


def test_force_applies_it_and_returns_what_it_affects(session):
    experiment = declare(session, two_blocks())
    before = mapping_version(from_row(queue(session)))
    plan = sync_queues(session, mapping(replace(CPU, memory_limit=500), BIG), force=True)
    (change,) = plan
    assert change.refused and [u.block for u in change.affected] == ["first", "second"]
    session.expire_all()
    row = queue(session)
    assert row.memory_limit == 500 and row.version == change.version != before
    assert session.get(QueueVersion, row.version) is not None
    assert get_block(session, experiment, "first").queue_id == row.id


def test_removing_a_used_queue_is_refused_then_forced(session):
    experiment = declare(session, two_blocks())
    with pytest.raises(SyncRefused) as refused:
        sync_queues(session, mapping(BIG))
    assert refused.value.refused[0].narrowing == ("removed",)
    assert queue(session) is not None
    sync_queues(session, mapping(BIG), force=True)
    session.expire_all()
    assert session.scalar(select(Queue).where(Queue.name == "cpu")) is None
    assert get_block(session, experiment, "first").queue_id is None  # the block lost its queue, as forced


def test_removing_an_environment_is_narrowing(session):
    declare(session, two_blocks())
    with pytest.raises(SyncRefused) as refused:
        sync_queues(session, mapping(replace(CPU, environments=()), BIG))
    assert refused.value.refused[0].narrowing == ("environments removed: python-3.11",)


def test_widening_or_another_account_goes_through_without_force(session):
    declare(session, two_blocks())
    wider = replace(CPU, memory_limit=2000, time_limit=20, max_slots_per_user=4, account="proj",
                    extra_directives=("--constraint=intel",))
    (change,) = sync_queues(session, mapping(wider, BIG))
    assert not change.narrowing and change.action == "update"
    session.expire_all()
    row = queue(session)
    assert (row.memory_limit, row.account, row.extra_directives) == (2000, "proj", ["--constraint=intel"])


def test_work_on_other_queues_or_a_dry_run_blocks_nothing_and_a_dry_run_writes_nothing(session):
    declare(session, {"name": "e", "author": "bob", "blocks": {"b": block(queue="big")}})
    narrower = mapping(replace(CPU, memory_limit=10), BIG)
    (change,) = sync_queues(session, narrower, dry_run=True)
    assert change.narrowing and not change.refused
    session.expire_all()
    assert queue(session).memory_limit == 1000  # the dry run wrote nothing
    with pytest.raises(SyncRefused):
        sync_queues(session, mapping(CPU, replace(BIG, max_slots_per_user=1)), dry_run=False)
    sync_queues(session, narrower)
    session.expire_all()
    assert queue(session).memory_limit == 10


def test_queues_the_file_and_the_database_disagree_on_are_named_until_synced(session):
    """`run` warns with these at start-up (an edit, or an upgrade that added rendered fields, not synced yet)."""
    from bridge.queues import unsynced

    edited = replace(CPU, account="research", extra_directives=("--nice=5",))
    assert unsynced(session, mapping(CPU, BIG)) == []
    assert unsynced(session, mapping(edited, BIG)) == ["cpu"]
    sync_queues(session, mapping(edited, BIG))
    assert unsynced(session, mapping(edited, BIG)) == []
