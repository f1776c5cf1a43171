"""Two sessions at once: finishing and cancelling the same job ends in a consistent state."""

from __future__ import annotations

import threading

from dbsupport import OK, block, count, declare, get_block
from sqlalchemy import select

from bridge import helpers
from bridge.models import Experiment, Job, JobSplit, StateHistory
from bridge.submission_db import mark_splits_submitting, record_submission


def _running_experiment(session, name):
    exp = declare(session, {"name": name, "author": "a", "blocks": {"b": block(f"pkg.{name}:f")}})
    (split,) = helpers.split_new_jobs(session)
    mark_splits_submitting(session, [split], f"tag-{name}")
    record_submission(session, f"tag-{name}", 100)
    helpers.on_split_started(session, split)
    return exp.id, split.id


def _race(factory, exp_id, split_id):
    barrier = threading.Barrier(2)
    errors = []

    def finish():
        with factory() as s:
            barrier.wait()
            helpers.on_split_done(s, split_id, OK)

    def cancel():
        with factory() as s:
            barrier.wait()
            helpers.cancel_experiment(s, exp_id)
            for split in helpers.process_newly_cancelled_experiments(s):
                helpers.on_split_cancelled(s, split)  # Slurm would report CANCELLED

    def guarded(target):
        def run():
            try:
                target()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (finish, cancel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_done_and_cancel_at_once(session, factory):
    for round_ in range(4):
        exp_id, split_id = _running_experiment(session, f"e{round_}")
        session.close()
        _race(factory, exp_id, split_id)
        with factory() as check:
            exp = check.get(Experiment, exp_id)
            b = get_block(check, exp, "b")
            # finished first: D. Cancel first: either the split still completes (the
            # block is done, its cache valid) or it is cancelled; the cancel ends in P.
            outcomes = {("D", "C", "C"), ("P", "C", "C"), ("P", "L", "N")}
            assert (exp.status, b.status, b.outputs[0].status) in outcomes
            assert b.job is None
            history = check.scalars(select(StateHistory).where(
                StateHistory.entity == "experiments", StateHistory.entity_id == exp_id)).all()
            ends = [h.to_status for h in history if h.from_status in ("R", "C")]
            assert ends in (["D"], ["C", "P"])  # one end, never two
    assert count(session, Job) == 0 and count(session, JobSplit) == 0
