"""poller.early: when result files of active elements bring the next poll forward, and by how much."""

from __future__ import annotations

import time

from poller.early import CONFIRM_DELAY, EARLY_GAP, ResultWatch, wait_for_results


def test_an_end_seen_after_the_last_poll_began_is_polled_early_gap_after_that_poll_not_a_confirm_delay_later():
    # the poll began at 10.0 and the cycle ended at 10.06: the next poll at 10.0 + EARLY_GAP
    assert wait_for_results(30.0, now=10.06, polled_at=10.0, fresh=True, unconfirmed=True) == \
        10.0 + EARLY_GAP - 10.06
    # long after the last poll (the snapshots' sacct ran in between): at once
    assert wait_for_results(30.0, now=12.0, polled_at=10.0, fresh=True, unconfirmed=False) == 0.0
    # never longer than the wait the loop had anyway
    assert wait_for_results(0.01, now=10.0, polled_at=10.0, fresh=True, unconfirmed=False) == 0.01


def test_an_end_the_last_poll_saw_still_running_is_confirmed_after_confirm_delay_and_no_result_changes_nothing():
    assert wait_for_results(30.0, now=10.06, polled_at=10.0, fresh=False, unconfirmed=True) == \
        max(CONFIRM_DELAY, EARLY_GAP)
    assert wait_for_results(0.05, now=10.06, polled_at=10.0, fresh=False, unconfirmed=True) == 0.05
    assert wait_for_results(30.0, now=10.06, polled_at=10.0, fresh=False, unconfirmed=False) == 30.0


def test_a_result_file_is_fresh_only_against_polls_that_began_before_it_was_seen(tmp_path):
    watch = ResultWatch(tmp_path)
    watch.active = {"bb-tag": {0, 1}}
    (tmp_path / "bb-tag").mkdir()
    before = time.monotonic()
    assert not watch.new_results() and not watch.seen_since(before)
    (tmp_path / "bb-tag" / "split-5.result.json").write_text("{}")  # not an active split's: ignored
    (tmp_path / "bb-tag" / "split-1.result.json").write_text("{}")
    assert watch.new_results()
    assert watch.seen_since(before)  # a poll that began before it may have missed the end
    assert not watch.seen_since(time.monotonic() + 1)  # a poll that began after it has seen it
    assert not watch.new_results()  # the same file is new once
