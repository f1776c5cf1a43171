"""sacct -X --parsable2 --noheader output -> one record per array element; bad lines skipped, never fatal."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bridge.sacct import (
    FIELDS,
    ArrayIdError,
    expand_array_id,
    latest_by_element,
    normalize_state,
    parse_exit_code,
    parse_line,
    parse_sacct,
    parse_time,
)
from bridge.slurm import parse_sbatch_parsable

DATA = Path(__file__).parent / "data"
TEN = ("JobID", "JobIDRaw", "JobName", "Partition", "State", "ExitCode", "NodeList", "Submit", "Start", "End")


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        ("123", [(123, None)]),
        ("123_4", [(123, 4)]),
        ("123_[4-9%2]", [(123, t) for t in range(4, 10)]),
        ("123_[1,3,5-7]", [(123, 1), (123, 3), (123, 5), (123, 6), (123, 7)]),
        ("123_[0-3,5%4]", [(123, 0), (123, 1), (123, 2), (123, 3), (123, 5)]),
        ("123_[1-9:4]", [(123, 1), (123, 5), (123, 9)]),
        ("123_[7]", [(123, 7)]),
        ("123_4.batch", [(123, 4)]),
    ],
)
def test_expand_array_id(job_id: str, expected: list) -> None:
    assert expand_array_id(job_id) == expected


@pytest.mark.parametrize("job_id", ["", "abc", "123_", "123_[]", "123_[5-2]", "123_[a-b]", "123_[1-4:0]", "_4"])
def test_expand_array_id_rejects(job_id: str) -> None:
    with pytest.raises(ArrayIdError):
        expand_array_id(job_id)


@pytest.mark.parametrize(("text", "state"), [("CANCELLED by 0", "CANCELLED"), ("COMPLETED+", "COMPLETED"),
                                              ("running", "RUNNING"), ("", "")])
def test_parse_state(text: str, state: str) -> None:
    assert normalize_state(text) == state


def test_parse_exit_code_and_time() -> None:
    assert parse_exit_code("3:0") == (3, 0)
    assert parse_exit_code("0:9") == (0, 9)
    assert parse_exit_code("2") == (2, 0)
    for bad in ("", "x:1", "1:x", "-1:0"):
        with pytest.raises(ValueError):
            parse_exit_code(bad)
    assert parse_time("2026-11-25T12:30:01") == datetime(2026, 11, 25, 12, 30, 1)
    assert parse_time("Unknown") is None and parse_time("None") is None and parse_time("") is None


def test_mixed_sample(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    records = parse_sacct((DATA / "sacct_mixed.txt").read_text())
    by_id = {r.job_id: r for r in records}

    done = by_id["41_0"]
    assert (done.array_job_id, done.array_task_id, done.raw_id) == (41, 0, "42")
    assert (done.state, done.exit_code, done.signal, done.node_list) == ("COMPLETED", 0, 0, "n1")
    assert done.end == datetime(2026, 11, 25, 12, 30, 5) and done.comment == "bb-a1"
    assert (by_id["41_1"].state, by_id["41_1"].exit_code) == ("FAILED", 3)
    cancelled = by_id["41_2"]
    assert (cancelled.state, cancelled.state_text, cancelled.signal) == ("CANCELLED", "CANCELLED by 0", 15)
    assert by_id["41_3"].state == "TIMEOUT"
    assert (by_id["41_4"].exit_code, by_id["41_4"].signal) == (0, 9)
    assert by_id["41_5"].end is None and by_id["41_5"].state == "RUNNING"
    assert by_id["53_2"].state == "COMPLETED" and by_id["53_2"].state_text == "COMPLETED+"
    assert by_id["53_3"].submit is None and by_id["53_3"].start is None
    assert by_id["53_4"].state == "SOMETHING_NEW"

    pending = [r for r in records if r.array_job_id == 41 and r.pending_range]
    assert [r.array_task_id for r in pending] == [6, 7, 8, 9]
    assert all(r.state == "PENDING" and r.raw_id == "41" and r.start is None for r in pending)
    assert [r.job_id for r in pending] == ["41_6", "41_7", "41_8", "41_9"]

    allocation = by_id["50"]
    assert allocation.array_task_id is None and not allocation.pending_range and not allocation.is_element
    assert (allocation.name, allocation.partition, allocation.state) == ("allocation", "", "FAILED")

    b2 = [r for r in records if r.array_job_id == 52]
    assert [r.array_task_id for r in b2] == [1, 3, 5, 6, 7]
    assert b2[0].comment == "bb-b2 user|with|pipes" and b2[0].partition == "long"

    skipped = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(skipped) == 5  # empty line, prose, "53_x", ExitCode "zero", Start "not-a-time"
    assert all("sacct output line" in r.getMessage() for r in skipped)
    assert "53_x" not in by_id and "53_5" not in by_id and "53_6" not in by_id


def test_ten_field_format_has_no_comment() -> None:
    records = parse_sacct((DATA / "sacct_10fields.txt").read_text(), TEN)
    assert [(r.job_id, r.state) for r in records] == [
        ("70_2", "PENDING"), ("70_3", "PENDING"), ("70_0", "RUNNING"), ("70_1", "COMPLETED"),
    ]
    assert all(r.comment == "" for r in records)


def test_wrong_column_count_skipped(caplog: pytest.LogCaptureFixture) -> None:
    line = "41_0|42|bb|cpu|COMPLETED|0:0|n1|2026-11-25T12:30:01|2026-11-25T12:30:02|2026-11-25T12:30:05"
    assert parse_sacct(line) == []  # 10 columns, 11 fields expected
    assert "expected 11 fields" in caplog.text
    with pytest.raises(ValueError):
        parse_line(line, FIELDS)


def test_required_fields() -> None:
    with pytest.raises(ValueError, match="State"):
        parse_sacct("", ("JobID", "JobName"))


def test_empty_output_is_no_records() -> None:
    assert parse_sacct("") == []


def test_latest_by_element_prefers_started_rows() -> None:
    text = (
        "80_[0-2]|80|bb|cpu|PENDING|0:0|None assigned|2026-11-25T13:00:00|Unknown|Unknown|\n"
        "80_1|81|bb|cpu|RUNNING|0:0|n1|2026-11-25T13:00:00|2026-11-25T13:00:01|Unknown|\n"
        "81|81|allocation||FAILED|0:0||2026-11-25T13:00:00|Unknown|Unknown|\n"
    )
    latest = latest_by_element(parse_sacct(text))
    assert sorted(latest) == [(80, 0), (80, 1), (80, 2)]
    assert latest[(80, 1)].state == "RUNNING"
    assert latest[(80, 0)].pending_range


def test_trailing_separator_of_parsable1_is_tolerated() -> None:
    line = "70_1|72|bb|cpu|COMPLETED|0:0|n2|2026-11-25T13:00:00|2026-11-25T13:00:01|2026-11-25T13:00:02|"
    assert [r.job_id for r in parse_sacct(line, TEN)] == ["70_1"]


# Recorded on the local cluster by tests/integration/raw_array.py (BRIDGE_RECORD_FIXTURES=1):
# a 10-element array where element 3 exits 3, element 5 is scancelled and element 7 runs past
# its time limit, read with sacct_argv's default 11 fields (Comment is empty: the cluster has
# no AccountingStoreFlags=job_comment, so the submission tag must be in the job name).
def test_real_array10_sample() -> None:
    job_id = parse_sbatch_parsable((DATA / "sbatch_array10.txt").read_text())
    text = (DATA / "sacct_array10.txt").read_text()
    records = parse_sacct(text)
    assert parse_sacct(text, TEN) == [dataclasses.replace(r, comment="") for r in records]
    elements = latest_by_element(records)
    assert sorted(elements) == [(job_id, t) for t in range(10)]
    by_task = {t: r for (_, t), r in elements.items()}
    assert (by_task[3].state, by_task[3].exit_code) == ("FAILED", 3)
    assert (by_task[5].state, by_task[5].state_text) == ("CANCELLED", "CANCELLED by 0")
    assert by_task[7].state == "TIMEOUT"
    assert {t for t, r in by_task.items() if r.state == "COMPLETED"} == {0, 1, 2, 4, 6, 8, 9}
    assert {r.node_list for r in by_task.values()} == {"n1", "n2"}
    assert by_task[9].raw_id == str(job_id)  # the last element's raw id is the array id (slurm-notes.md)
    assert all(r.start and r.end and r.submit <= r.start <= r.end for r in by_task.values())
    assert by_task[7].end - by_task[7].start >= timedelta(minutes=1)
