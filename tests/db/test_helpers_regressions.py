"""Regressions found by the random tests, replayed as fixed event orders."""

from __future__ import annotations

from dbsupport import block, count, declare, get_block, run_block, splits_of, status, two_blocks

from bridge import helpers
from bridge.models import Job
from bridge.submission_db import mark_splits_submitting, record_submission


def _assert_runs_on_its_own(session, experiment):
    """The experiment is still live, its first block unfinished with a job of its own to split."""
    assert status(session, experiment) in ("S", "R")
    first = get_block(session, experiment, "first")
    assert first.status in ("N", "P")
    assert first.job is not None and first.job.mirror is False and first.job.splits == []
    run_block(session, experiment, "first")
    run_block(session, experiment, "second")
    assert status(session, experiment) == "D"


def test_a_cancel_reported_before_the_hand_over_leaves_the_mirror_running(session):
    """Slurm reports the original's split cancelled before process_newly_cancelled_experiments
    handed it to the mirror: the mirror's experiment did not ask for that cancel, so its
    block must not end cancelled (it used to, and its experiment then waited forever)."""
    original = declare(session, two_blocks(name="original", author="alice"))
    mirror = declare(session, two_blocks(name="mirror", author="bob"))
    helpers.split_new_jobs(session)
    assert get_block(session, mirror, "first").job.mirror is True
    (split,) = splits_of(session, original, "first")
    helpers.on_split_started(session, split)
    helpers.cancel_experiment(session, original)
    assert helpers.on_split_cancelled(session, split) == []
    assert helpers.process_newly_cancelled_experiments(session) == []
    assert status(session, original) == "P"
    assert get_block(session, original, "first").status == "L"
    _assert_runs_on_its_own(session, mirror)
    assert count(session, Job) == 0


def test_splits_already_cancelling_handed_to_a_mirror_leave_it_running(session):
    """The original's split is claimed, its experiment cancelled (split K) before the
    submission is recorded; recording it makes a later job its mirror, and the next
    cycle hands the cancelling split to that mirror. Its cancel must not cancel the
    mirror's block."""
    original = declare(session, two_blocks(name="original", author="alice"))
    (split,) = helpers.split_new_jobs(session)
    assert [s.id for s in mark_splits_submitting(session, [split], "t1")] == [split.id]
    helpers.cancel_experiment(session, original)
    helpers.process_newly_cancelled_experiments(session)
    assert status(session, split) == "K"
    mirror = declare(session, two_blocks(name="mirror", author="bob"))
    record_submission(session, "t1", 1001)
    assert get_block(session, mirror, "first").job.mirror is True
    helpers.process_newly_cancelled_experiments(session)
    session.refresh(split)
    assert split.status == "K" and split.job.block.experiment_id == mirror.id  # handed over
    helpers.on_split_cancelled(session, split)
    helpers.process_newly_cancelled_experiments(session)
    assert status(session, original) == "P"
    _assert_runs_on_its_own(session, mirror)
    assert count(session, Job) == 0


def test_a_failed_block_cancels_a_sibling_waiting_on_slurm_and_the_experiment_fails(session):
    """Found on the real cluster: a pending sibling block with splits submitted (held on Slurm)
    is cancelled by the failure; when Slurm reports those splits cancelled, the sibling must
    end cancelled (L) and the experiment F, not be released to run again in a failing
    experiment that then never ends."""
    experiment = declare(session, {"name": "failing", "author": "alice", "blocks": {
        "bad": block("pkg.bad:f"), "held": block("pkg.held:f")}})
    bad, held = helpers.split_new_jobs(session)
    assert [s.id for s in mark_splits_submitting(session, [held], "t1")] == [held.id]
    record_submission(session, "t1", 2001)
    helpers.on_split_started(session, bad)
    to_scancel = helpers.on_split_fail(session, bad, "boom")
    assert [s.id for s in helpers.process_newly_cancelled_experiments(session) + to_scancel] == [held.id]
    assert status(session, held) == "K"
    helpers.on_split_cancelled(session, held)
    helpers.split_new_jobs(session)
    assert get_block(session, experiment, "held").status == "L"
    assert status(session, experiment) == "F"
    assert count(session, Job) == 0
