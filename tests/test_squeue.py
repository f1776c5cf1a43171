"""squeue's view of arrays, parsed into the same records as sacct's (recorded on the local cluster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.slurm import squeue_argv, squeue_argvs
from bridge.squeue import SqueueLines, by_element, parse_squeue, squeue_view, wait_status

DATA = Path(__file__).parent / "data"


def test_argv_asks_for_all_states_of_the_arrays_without_truncation():
    argv = squeue_argv([12, 13])
    assert argv[:6] == ["squeue", "-h", "-t", "all", "-j", "12,13"]
    assert all(field.endswith(":|") for field in argv[7].split(","))


def test_long_id_lists_are_chunked_each_id_once():
    argvs = squeue_argvs(range(5), chunk=2)
    assert [argv[5] for argv in argvs] == ["0,1", "2,3", "4"]
    assert squeue_argvs([]) == []
    with pytest.raises(ValueError):
        squeue_argvs([1], chunk=0)


@pytest.mark.parametrize("raw, expected", [("0", "0:0"), ("768", "3:0"), ("9", "0:9"), ("15", "0:15"), ("256", "1:0")])
def test_raw_wait_status_becomes_sacct_exit_code(raw, expected):
    assert wait_status(raw) == expected


def test_recorded_states_exit_codes_nodes_and_pending_ranges():
    records = by_element(parse_squeue((DATA / "squeue_states.txt").read_text()))
    assert (records["269_0"].state, records["269_0"].exit_code, records["269_0"].signal) == ("FAILED", 3, 0)
    assert (records["269_1"].state, records["269_1"].exit_code, records["269_1"].signal) == ("FAILED", 0, 9)
    assert records["269_2"].state == "CANCELLED"
    assert records["272_0"].state == "COMPLETED" and records["272_0"].node_list == "n1"
    assert records["272_0"].name == "bb-0123456789abcdef-0123456789abcdef-xyz"
    assert records["272_0"].end is not None and records["272_0"].raw_id == "273"
    pending = [records[f"277_{t}"] for t in range(2, 10)]
    assert all(r.state == "PENDING" and r.pending_range and r.start is None for r in pending)
    assert records["277_0"].state == "RUNNING" and not records["277_0"].pending_range


def test_garbage_lines_are_skipped_not_fatal():
    text = "nonsense\n1_0|1|cpu|RUNNING|n1|2026-11-25T12:00:00|N/A|N/A|notanumber|x|\n\n"
    assert parse_squeue(text) == []


def test_the_poller_view_names_pending_elements_without_a_record_each():
    view = squeue_view((DATA / "squeue_states.txt").read_text())
    assert view.pending == {f"277_{t}" for t in range(2, 10)}
    assert "277_0" in view.records and "277_0" not in view.pending
    assert view.records["269_0"].exit_code == 3


def test_a_cancelled_range_row_settles_its_never_started_elements():
    """A held array scancelled before any element started (tests/data/replay/pending.json)."""
    text = ("50_[0-2]|50|cpu|CANCELLED||2026-12-01T13:19:38|2026-12-01T13:19:43|2026-12-01T13:19:43|0|bb-x|\n"
            "51_[3-4]|51|cpu|PENDING||2026-12-01T13:19:38|N/A|N/A|0|bb-y|\n")
    view = squeue_view(text)
    assert view.pending == {"51_3", "51_4"}
    assert sorted(view.records) == ["50_0", "50_1", "50_2"]
    assert all(r.state == "CANCELLED" and r.end is not None for r in view.records.values())


def test_lines_printed_again_mean_the_same_and_a_view_changed_by_its_reader_changes_no_later_view():
    """squeue_view with SqueueLines (the client's, across polls) gives what a fresh parse gives."""
    lines = SqueueLines()
    text = (DATA / "squeue_states.txt").read_text()
    first = squeue_view(text, lines)
    first.records.clear()  # the poller changes its view (never_started, sacct's records)
    first.bare.clear()
    lines.new_round()
    again = squeue_view(text, lines)
    fresh = squeue_view(text)
    assert (again.pending, again.records, again.bare) == (fresh.pending, fresh.records, fresh.bare)
    changed = text.replace("277_[2-9%2]|277|cpu|PENDING|", "277_[3-9%2]|277|cpu|PENDING|").replace(
        "277_0|278|cpu|RUNNING|", "277_0|278|cpu|COMPLETED|")
    lines.new_round()
    later = squeue_view(changed, lines)
    assert later.pending == {f"277_{t}" for t in range(3, 10)} and later.records["277_0"].state == "COMPLETED"


def test_a_malformed_line_is_warned_about_each_time_it_is_printed(caplog):
    lines = SqueueLines()
    for _ in range(2):
        lines.new_round()
        squeue_view("277_x|277|cpu|RUNNING|n1|N/A|N/A|N/A|0|bb|\n", lines)
    assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == 2


def test_an_answer_printed_again_whole_keeps_its_lines_known_for_when_one_changes():
    lines = SqueueLines()
    text = (DATA / "squeue_states.txt").read_text()
    for _ in range(3):  # the second and third rounds reuse the whole answer
        lines.new_round()
        squeue_view(text, lines)
    lines.new_round()
    changed = text.replace("277_0|278|cpu|RUNNING|", "277_0|278|cpu|COMPLETED|")
    unchanged = [line for line in changed.splitlines() if line in text.splitlines()]
    assert unchanged and all(lines.get(line) is not None for line in unchanged)
