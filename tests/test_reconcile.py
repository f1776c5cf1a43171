"""Reconciliation's pure rules: each kind of divergence, the other deployment ignored, the lost rule's N runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bridge.config import LostRule
from bridge.reconcile import judge, window
from bridge.reconcile_facts import Claim, Facts, Misses, SnapshotRow, SplitRow
from bridge.sacct import parse_line
from bridge.tags import new_tag

T0 = datetime(2026, 12, 1, 12, 0, 0)
READ = T0 + timedelta(hours=1)  # when squeue answered
OURS = new_tag(now=T0.timestamp(), pid=100, deployment="prod")
OURS_2 = new_tag(now=T0.timestamp(), pid=101, deployment="prod")
OTHER = new_tag(now=T0.timestamp(), pid=100, deployment="staging")
OLD = "bb-6b0ed70e-5bce-472-312565"  # a tag from before deployments: no deployment, never "ours"
RULE = LostRule(misses=3, grace=20.0)


def rec(job_id: str, state: str, name: str):
    """Slurm records as squeue or sacct give them (a pending range `J_[a-b]` expands to one per element)."""
    return parse_line(f"{job_id}|{state}|{name}", ("JobID", "State", "JobName"))


def facts(*, jobs=(), accounted=(), splits=(), snapshots=(), claims=(), misses=None, now=READ) -> Facts:
    return Facts("prod", READ, now, READ - timedelta(days=7), [r for j in jobs for r in j],
                 [r for a in accounted for r in a], list(splits), list(snapshots), list(claims), misses or {})


def split(split_id, status, tag=OURS, array="500", index=0, state=None, settled=None, submitted=T0):
    return SplitRow(split_id, status, 7, "b", tag, array, f"{array}_{index}" if array else None, state,
                    submitted if array else None, settled)


def snapshot(split_id, status, element, tag=OURS, state=None, from_sacct=False, settled=T0):
    return SnapshotRow(split_id, status, 7, "b", tag, element, state, from_sacct, settled)


def kinds(report) -> list[tuple]:
    return [(d.kind, d.split_id, d.tag, d.slurm_id, d.slurm_state) for d in report.divergences]


def run(f: Facts, stuck_after: float = 300.0):
    return judge(f, RULE, stuck_after)


# --- orphans ----------------------------------------------------------------------------------


def test_an_unknown_array_of_this_deployment_is_one_orphan_and_other_names_are_never_reported():
    report = run(facts(jobs=[
        rec("600_[0-2]", "PENDING", OURS),  # ours, unknown: one orphan for the whole array
        rec("601_0", "RUNNING", OTHER), rec("601_[1-3]", "PENDING", OTHER),  # another deployment's
        rec("602_0", "RUNNING", OLD),  # an old-shape tag nobody here knows: whose is unknown
        rec("603", "RUNNING", "someone-elses-job"), rec("604_0", "RUNNING", "bb-prod"),
        rec("605_0", "COMPLETED", OURS_2),  # ours but finished: nothing to stop
    ]))
    assert kinds(report) == [("orphan", None, OURS, "600", "PENDING")]
    assert "3 element(s)" in report.divergences[0].detail and not report.clean
    assert report.to_dict()["counts"] == {"orphan": 1, "lost": 0, "divergent": 0, "stuck": 0}


def test_an_array_the_database_knows_by_a_split_or_a_snapshot_is_no_orphan():
    report = run(facts(
        jobs=[rec("500_0", "RUNNING", OURS), rec("510_1", "PENDING", OURS_2)],
        splits=[split(1, "P", OURS, "500", 0)], snapshots=[snapshot(9, "L", "510_0", OURS_2)]))
    # 510_1: a tag the snapshots know, but not an element recorded under it (a second array of one tag)
    assert kinds(report) == [("orphan", None, OURS_2, "510_1", "PENDING")]


def test_an_element_beat_has_final_since_before_squeue_answered_is_an_orphan():
    report = run(facts(
        jobs=[rec("500_0", "RUNNING", OURS), rec("500_1", "RUNNING", OURS), rec("500_2", "PENDING", OURS)],
        splits=[split(1, "F", OURS, "500", 0, settled=READ - timedelta(minutes=5)),  # failed, still running
                split(2, "C", OURS, "500", 1, settled=READ + timedelta(seconds=1))],  # settled after: a race
        snapshots=[snapshot(3, "L", "500_2", settled=READ - timedelta(minutes=1))]))  # cancelled, still pending
    assert kinds(report) == [("orphan", 1, OURS, "500_0", "RUNNING"), ("orphan", 3, OURS, "500_2", "PENDING")]
    assert report.divergences[0].experiment_id == 7 and "failed (F) in BEAT" in report.divergences[0].detail


def test_known_final_elements_of_an_old_shape_tag_the_database_made_are_orphans_too():
    report = run(facts(jobs=[rec("700_0", "RUNNING", OLD)],
                       splits=[split(4, "C", OLD, "700", 0, settled=READ - timedelta(hours=1))]))
    assert kinds(report) == [("orphan", 4, OLD, "700_0", "RUNNING")]


def test_an_array_whose_claim_is_not_recorded_yet_is_no_orphan():
    claimed = split(5, "N", OURS, array=None)  # sbatch returned, record_submission not yet committed
    report = run(facts(jobs=[rec("800_0", "PENDING", OURS)], splits=[claimed],
                       claims=[Claim(OURS, (5,), 7, "b", reported=False)]), stuck_after=1e9)
    assert report.clean and report.divergences == []


# --- lost -------------------------------------------------------------------------------------


def test_a_split_slurm_does_not_know_is_lost_only_after_n_runs_over_the_grace():
    splits = [split(1, "P", array="900"), split(2, "N", array="901"), split(3, "P", array="902")]
    seen_902 = rec("902_0", "COMPLETED", OURS)  # sacct knows it: never missed
    misses: dict = {}
    history = []
    for seconds in (0, 10, 15, 25):
        report = run(facts(splits=splits, accounted=[seen_902], misses=misses, now=READ + timedelta(seconds=seconds)))
        misses = report.misses
        history.append(([d.split_id for d in report.of("lost")], [d.split_id for d in report.watching]))
    assert history == [([], [1, 2]), ([], [1, 2]), ([], [1, 2]), ([1, 2], [])]  # 3 runs, but 15 s < 20 s
    assert misses[1] == Misses("900", 4, READ) and 3 not in misses
    assert report.of("lost")[0].slurm_id == "900_0" and "4 run(s) in a row over 25 s" in report.of("lost")[0].detail


def test_a_split_seen_again_or_under_a_new_array_starts_its_count_again():
    before = {1: Misses("900", 5, READ - timedelta(hours=1)), 2: Misses("old", 5, READ - timedelta(hours=1))}
    report = run(facts(splits=[split(1, "P", array="900"), split(2, "P", array="901")],
                       jobs=[rec("900_0", "RUNNING", OURS)], misses=before))
    assert report.of("lost") == [] and report.misses == {2: Misses("901", 1, READ)}


def test_a_split_recorded_after_squeue_answered_is_not_judged():
    late = split(1, "N", array="950", submitted=READ + timedelta(seconds=1))
    report = run(facts(splits=[late], misses={1: Misses("950", 9, READ - timedelta(hours=1))}))
    assert report.clean and report.watching == [] and report.misses == {}


def test_the_sacct_window_covers_the_oldest_submitted_split():
    assert window(READ, timedelta(days=7), [], timedelta(minutes=5)) == READ - timedelta(days=7)
    old = READ - timedelta(days=9)
    assert window(READ, timedelta(days=7), [old], timedelta(minutes=5)) == old - timedelta(minutes=5)


# --- divergent --------------------------------------------------------------------------------


def test_final_states_that_disagree_are_divergent_and_a_cancelled_split_agrees_with_anything():
    report = run(facts(
        splits=[split(1, "C", array="300", index=0, state="COMPLETED"),  # the poll said so, sacct says OOM
                split(2, "L", array="300", index=1, state="CANCELLED by 0")],
        snapshots=[snapshot(3, "F", "301_0", state="COMPLETED", from_sacct=True),
                   snapshot(4, "C", "301_1", state=None),  # pending: judged by this run's sacct
                   snapshot(5, "C", "301_2", state="COMPLETED", from_sacct=True),
                   snapshot(6, "F", "301_3", state="TIMEOUT", from_sacct=True),
                   snapshot(7, "L", "301_4", state="FAILED")],
        accounted=[rec("300_0", "OUT_OF_MEMORY", OURS), rec("300_1", "FAILED", OURS),
                   rec("301_1", "FAILED", OURS), rec("301_2", "RUNNING", OURS)]))
    assert kinds(report) == [("divergent", 1, OURS, "300_0", "OUT_OF_MEMORY"),
                             ("divergent", 3, OURS, "301_0", "COMPLETED"),
                             ("divergent", 4, OURS, "301_1", "FAILED")]
    details = [d.detail for d in report.divergences]
    assert details == ["done (C) in BEAT, OUT_OF_MEMORY on Slurm (sacct)",
                       "failed (F) in BEAT, COMPLETED on Slurm (sacct, at settling)",
                       "done (C) in BEAT, FAILED on Slurm (sacct)"]


def test_a_split_row_is_judged_once_even_with_its_snapshot():
    report = run(facts(splits=[split(1, "C", array="300", state="FAILED")],
                       snapshots=[snapshot(1, "C", "300_0", state="FAILED", from_sacct=True)]))
    assert kinds(report) == [("divergent", 1, OURS, "300_0", "FAILED")]


# --- stuck ------------------------------------------------------------------------------------


def test_a_claim_never_recorded_is_stuck_past_stuck_after_or_once_reported():
    old = new_tag(now=(READ - timedelta(seconds=600)).timestamp(), deployment="prod")
    young = new_tag(now=(READ - timedelta(seconds=10)).timestamp(), deployment="prod")
    flagged = replace(Claim(young, (3,), 7, "b"), reported=True)
    listed = new_tag(now=(READ - timedelta(seconds=900)).timestamp(), deployment="prod")
    report = run(facts(claims=[Claim(old, (1, 2), 7, "b"), Claim(young, (4,), 7, "b"), flagged,
                               Claim(listed, (5,), 8, "c")],
                       jobs=[rec("777_0", "PENDING", listed)]))
    assert kinds(report) == [("stuck", 1, old, None, None), ("stuck", 3, young, None, None),
                             ("stuck", 5, listed, "777", None)]
    assert "2 split(s) claimed 600 s ago" in report.divergences[0].detail
    assert "squeue lists it as array 777" in report.divergences[2].detail


def test_a_clean_report_says_so_in_json():
    report = run(facts(splits=[split(1, "P", array="900")], jobs=[rec("900_0", "RUNNING", OURS)]))
    document = report.to_dict()
    assert document["clean"] is True and document["divergences"] == [] and document["error"] is None
    assert document["checked"]["splits"] == 1 and document["checked"]["slurm_jobs"] == 1


def test_the_failed_attempts_of_a_resubmitted_split_are_neither_divergent_nor_orphans():
    """Split 1 ran out of memory, then on its node's failure, then timed out; attempt 4 runs (then is done)."""
    earlier = [snapshot(1, "F", "300_0", OURS, "FAILED", from_sacct=True),  # a memory kill on 22.05: FAILED 0:9
               snapshot(1, "F", "310_0", OURS_2, "NODE_FAIL", from_sacct=True),
               snapshot(1, "F", "320_0", OURS_2, "TIMEOUT")]
    squeue = [rec("300_0", "FAILED", OURS), rec("310_0", "NODE_FAIL", OURS_2), rec("320_0", "TIMEOUT", OURS_2)]
    accounted = [rec("300_0", "FAILED", OURS), rec("310_0", "NODE_FAIL", OURS_2),
                 rec("320_0", "TIMEOUT", OURS_2)]
    running = run(facts(jobs=[*squeue, rec("330_0", "RUNNING", OURS)], accounted=accounted,
                        splits=[split(1, "P", OURS, "330", 0)], snapshots=earlier))
    assert running.clean, kinds(running)
    done = run(facts(jobs=squeue, accounted=[*accounted, rec("330_0", "COMPLETED", OURS)],
                     splits=[split(1, "C", OURS, "330", 0, state="COMPLETED", settled=T0)],
                     snapshots=[*earlier, snapshot(1, "C", "330_0", OURS, "COMPLETED", from_sacct=True)]))
    assert done.clean, kinds(done)
    # an earlier attempt is judged on its own element though the split's row is final: failed, yet COMPLETED
    wrong = run(facts(accounted=[rec("300_0", "COMPLETED", OURS)],
                      splits=[split(1, "C", OURS, "330", 0, state="COMPLETED", settled=T0)], snapshots=earlier[:1]))
    assert kinds(wrong) == [("divergent", 1, OURS, "300_0", "COMPLETED")]


def test_a_done_element_still_running_within_its_linger_is_no_orphan():
    """bridge.handover: done from its result, the element waits up to LINGER for its release."""
    report = run(facts(
        jobs=[rec("500_0", "RUNNING", OURS), rec("500_1", "RUNNING", OURS), rec("500_2", "RUNNING", OURS)],
        splits=[split(1, "C", OURS, "500", 0, settled=READ - timedelta(seconds=1)),  # lingering
                split(2, "C", OURS, "500", 1, settled=READ - timedelta(minutes=1)),  # far longer than LINGER
                split(3, "F", OURS, "500", 2, settled=READ - timedelta(seconds=1))]))  # failures never linger
    assert kinds(report) == [("orphan", 2, OURS, "500_1", "RUNNING"), ("orphan", 3, OURS, "500_2", "RUNNING")]
