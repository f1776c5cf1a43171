"""`experiments show`'s explanation, pure: rows in, dict and text out (bridge.explain, bridge.explain_text)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from bridge.explain import BlockRow, ExperimentRow, Facts, JobRow, LogFacts, ResultRow, SnapshotRow, SplitRow, explain
from bridge.explain_read import element_logs, tail_lines
from bridge.explain_text import render

T0 = datetime(2026, 12, 1, 9, 0, 0)
NOW = T0 + timedelta(minutes=5)
TRACEBACK = "Traceback (most recent call last):\n  File \"a.py\", line 3\nRuntimeError: loss is NaN\n"


def experiment(status: str = "F", name: str = "thesis") -> ExperimentRow:
    return ExperimentRow(7, "erin", name, status, T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=40))


def failed_from_snapshots(**snapshot) -> Facts:
    """`src` done, `train` failed: both jobs deleted, so their splits come from snapshots and results."""
    values = dict(split_id=12, block_name="train", element_id="551_0", split_status="F", tag="bb-main-x",
                  state="FAILED", exit_code="1:0", node="n2", elapsed_s=31, verdict="failed:failed")
    values.update(snapshot)
    return Facts(
        experiment=experiment(),
        blocks=[BlockRow(1, "src", "C", "default", "cpu"), BlockRow(2, "train", "F", "default", "cpu",
                                                                    depends_on=("src",))],
        snapshots=[SnapshotRow(10, "src", "548_0", "C", 0, "bb-main-w", "COMPLETED", "0:0", "n1", 3),
                   SnapshotRow(**values)],
        results=[ResultRow(1, 0, 0), ResultRow(2, 0, 1, user_error=TRACEBACK,
                                               system_error="Slurm state FAILED: exit code 1")],
        logs={"551_0": LogFacts("/s/bb-main-x/slurm-551_0.out", "/s/bb-main-x/slurm-551_0.err", "present",
                                ("loading 4 rows", "fail_always: about to fail"))},
    )


def test_a_failed_split_known_only_from_its_snapshot_is_the_why_with_its_element_node_and_error():
    view = explain(failed_from_snapshots(), NOW)
    assert view["why"] == {"block": "train", "split": 0, "element_id": "551_0", "node": "n2",
                           "error": "RuntimeError: loss is NaN"}
    (split,) = view["blocks"][1]["splits"]
    assert (split["source"], split["slurm_state"], split["exit_code"], split["elapsed_s"]) == (
        "accounting snapshot", "FAILED", "1:0", 31)
    assert split["system_error"] == "Slurm state FAILED: exit code 1"
    text = "\n".join(render(view))
    assert "why: block 'train' split 0 (element 551_0 on n2) failed: RuntimeError: loss is NaN" in text
    assert "split 0: F (failed), element 551_0 on n2, FAILED exit 1:0, elapsed 31 s" in text
    assert "logs (present): /s/bb-main-x/slurm-551_0.out, .err" in text
    assert "  | fail_always: about to fail" in text
    assert "verdict" not in text  # failed:failed says nothing the state does not


def test_a_snapshot_keeps_its_split_index_past_max_array_size():
    """A job of 1,500 splits runs as two arrays; element 900_498 is split 1499, whose Result it must meet."""
    facts = failed_from_snapshots(element_id="900_498", split_index=1499)
    facts = Facts(facts.experiment, facts.blocks, snapshots=facts.snapshots,
                  results=[ResultRow(2, 1499, 1, user_error="ValueError: bad row")])
    (split,) = explain(facts, NOW)["blocks"][1]["splits"]
    assert (split["index"], split["user_error"]) == (1499, "ValueError: bad row")


def test_a_failure_at_submission_has_only_its_result_and_says_it_never_reached_slurm():
    facts = Facts(experiment(), [BlockRow(1, "a", "F", "gpu", "gpu")],
                  results=[ResultRow(1, 0, 1, system_error="submission to queue 'gpu' failed: "
                                     "sbatch: error: invalid partition name specified")])
    view = explain(facts, NOW)
    assert view["blocks"][0]["splits"][0]["source"] == "result only"
    assert render(view)[1] == ("why: block 'a' split 0 (never reached Slurm) failed: submission to queue 'gpu' "
                               "failed: sbatch: error: invalid partition name specified")


def test_live_rows_show_slurms_pending_reason_and_running_time_and_win_over_an_older_snapshot():
    job = JobRow(4, mirrors=("bob/other/src (experiment 9, job 6)",))
    facts = Facts(
        experiment(status="R"), [BlockRow(1, "src", "P", "default", "cpu", job=job)],
        splits=[SplitRow(20, 1, 0, "P", "bb-t", "700_0", "RUNNING", "n1", "0:0", start=NOW - timedelta(seconds=75)),
                SplitRow(21, 1, 1, "N", "bb-t", "700_1", "PENDING"),
                SplitRow(22, 1, 2, "N")],
        snapshots=[SnapshotRow(3, "src", "650_0", "F", 0, "bb-old", "FAILED", "1:0", "n2")],  # an earlier run
        results=[ResultRow(1, 0, 1, user_error="old failure")],
        reasons={"700_1": "Priority"}, slurm_asked=True)
    view = explain(facts, NOW)
    running, pending, unsubmitted = view["blocks"][0]["splits"]
    assert (running["element_id"], running["elapsed_s"], running["user_error"]) == ("700_0", 75, None)
    assert pending["pending_reason"] == "Priority" and view["why"] is None
    text = render(view)
    assert "    job 4; mirrored by bob/other/src (experiment 9, job 6)" in text
    assert "    split 0: P (processing), element 700_0 on n1, RUNNING, elapsed 1:15" in text
    assert "    split 1: N (queued), element 700_1, PENDING, pending: Priority" in text
    assert "    split 2: N (queued), not submitted yet" in text


def test_slurm_unreadable_is_one_line_and_the_rest_is_shown():
    facts = Facts(experiment(status="R"), [BlockRow(1, "src", "P", "default", "cpu", job=JobRow(4))],
                  splits=[SplitRow(21, 1, 0, "N", "bb-t", "700_0", "PENDING")], slurm_asked=True,
                  slurm_error="squeue exited 1: slurm_load_jobs error: Socket timed out on send/recv operation")
    text = render(explain(facts, NOW))
    assert text[1] == ("Slurm not read (pending reasons unknown): squeue exited 1: slurm_load_jobs error: "
                       "Socket timed out on send/recv operation")
    assert "    split 0: N (queued), element 700_0, PENDING" in text


def test_control_characters_in_names_errors_and_logs_are_printed_escaped():
    facts = failed_from_snapshots(block_name="tr\u202eain", node="n\x1b[2J1")
    blocks = [BlockRow(1, "src", "C", "default", "cpu"), BlockRow(2, "tr\u202eain", "F", "q\x07", "cpu")]
    logs = {"551_0": LogFacts("/s/x\n.out", "/s/x\n.err", "present", ("\x1b[31mred\r", "ok"))}
    facts = Facts(experiment(name="evil\x1b]0;title\x07"), blocks, snapshots=facts.snapshots,
                  results=[ResultRow(2, 0, 1, user_error="bad\x1b[1mbold")], logs=logs)
    view = explain(facts, NOW)
    text = "\n".join(render(view))
    assert not any(c in text for c in "\x1b\x07\r\u202e")
    assert "evil\\x1b]0;title\\x07" in text and "block 'tr\\u202eain'" in text and "on n\\x1b[2J1" in text
    assert "  | \\x1b[31mred\\r" in text and "bad\\x1b[1mbold" in text
    assert all(c not in json.dumps(view) for c in "\x1b\x07\u202e")


def test_a_block_of_many_splits_lists_only_those_not_completed():
    splits = [SplitRow(100 + i, 1, i, "C" if i != 7 else "F", "bb-t", f"800_{i}", "COMPLETED") for i in range(25)]
    view = explain(Facts(experiment(), [BlockRow(1, "big", "F", "default", "cpu", job=JobRow(5))],
                         splits=splits), NOW)
    text = render(view)
    assert [line for line in text if line.startswith("    split ")] == [
        "    split 7: F (failed), element 800_7, COMPLETED"]
    assert "    (24 completed splits not listed: --json lists every split)" in text
    assert len(view["blocks"][0]["splits"]) == 25


def test_element_logs_say_removed_when_the_spool_is_gone_and_tail_failed_ones(tmp_path):
    kept = tmp_path / "bb-main-kept"
    kept.mkdir()
    (kept / "slurm-5_0.err").write_text("".join(f"line {i}\n" for i in range(30)))
    (kept / "slurm-5_1.err").write_text("done\n")
    logs = element_logs(tmp_path, [("bb-main-kept", "5_0", "F"), ("bb-main-kept", "5_1", "C"),
                                   ("bb-main-kept", "5_2", "N"), ("bb-main-gone", "6_0", "F")], lines=3)
    assert (logs["5_0"].state, logs["5_0"].tail) == ("present", ("line 27", "line 28", "line 29"))
    assert (logs["5_1"].state, logs["5_1"].tail) == ("present", ())  # a completed split: its path only
    assert logs["5_2"].state == "not written" and logs["6_0"].state == "removed"
    assert logs["6_0"].stderr == str(tmp_path.resolve() / "bb-main-gone" / "slurm-6_0.err")


def test_the_tail_of_a_large_log_reads_only_its_end_and_drops_the_cut_line(tmp_path):
    log = tmp_path / "big.err"
    log.write_bytes(b"x" * 100_000 + b"\n" + "".join(f"row {i}\n" for i in range(5)).encode() + b"\xff\n")
    assert tail_lines(log, 3) == ("row 3", "row 4", "\ufffd")
    assert tail_lines(tmp_path / "missing.err", 3) == ()


def test_a_resubmitted_split_is_its_latest_attempt_with_the_earlier_ones_listed_under_it():
    """Split 12 ran out of memory (attempt 1), then failed on the bigger queue (attempt 2): snapshots only."""
    first = SnapshotRow(12, "train", "550_0", "F", 0, "bb-main-v", "FAILED", "0:9", "n1", 4,
                        verdict="failed:out_of_memory", attempt=1, queue="small")
    facts = failed_from_snapshots(attempt=2, queue="big")
    facts = Facts(facts.experiment, facts.blocks, snapshots=[facts.snapshots[1], first, facts.snapshots[0]],
                  results=facts.results, logs=facts.logs)  # any order: the latest attempt wins
    view = explain(facts, NOW)
    (split,) = view["blocks"][1]["splits"]
    assert (split["element_id"], split["attempt"], split["queue"], view["why"]["element_id"]) == (
        "551_0", 2, "big", "551_0")
    assert [(a["attempt"], a["element_id"], a["verdict"]) for a in split["attempts"]] == [
        (1, "550_0", "failed:out_of_memory")]
    text = render(view)
    line = text.index("    split 0: F (failed), element 551_0 on n2, attempt 2 in queue big, FAILED exit 1:0, "
                      "elapsed 31 s, [accounting snapshot]")
    assert text[line + 1] == ("        attempt 1: element 550_0 on n1, FAILED exit 0:9, elapsed 4 s, "
                              "verdict failed:out_of_memory, queue small")
    assert json.loads(json.dumps(view))["blocks"][1]["splits"][0]["attempts"][0]["node"] == "n1"
