"""The audit's figures, worked by hand here, and its read of the snapshots (sacct only for what they lack)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from fakes import DATA, SACCT_DOWN, Answer
from replay_env import make_replay_env

from bridge.advice import advise
from bridge.audit import Element, audit, failure_reason, percentile, wait_seconds
from bridge.audit_format import COLUMNS, to_csv, to_json, to_table
from bridge.audit_query import fill_missing, load
from bridge.db import create_session_factory
from bridge.models_audit import AccountingSnapshot
from bridge.queues_config import QueueConfig
from bridge.when import parse_when

T0 = datetime(2026, 12, 1, 10, 0, 0)
DAY = (T0 - timedelta(hours=1), T0 + timedelta(days=1))


def element(i: int, state: str | None = "COMPLETED", **over) -> Element:
    values = dict(element_id=f"7_{i}", experiment_id=1, experiment_name="exp", block_name="b", author="bob",
                  queue="default", partition="cpu", algorithm="pkg.mod:fn", node="n1", split_status="C", verdict=None,
                  state=state, exit_code="0:0", alloc_cpus=1, req_mem_mb=1000, max_rss_kb=100 * 1024,
                  total_cpu_s=30.0, elapsed_s=60, timelimit_min=10, submit=T0, start=T0 + timedelta(seconds=i),
                  end=T0 + timedelta(seconds=60 + i))
    values.update(over)
    return Element(**values, wait_s=wait_seconds(values["submit"], values["start"]))


def test_figures_of_a_mixed_group_worked_by_hand():
    elements = [
        element(0),  # 1 cpu x 60 s, used 30 s, RSS 100 of 1000 MB
        element(1, alloc_cpus=2, elapsed_s=120, total_cpu_s=180.0, max_rss_kb=500 * 1024),
        element(2, "FAILED", exit_code="3:0", elapsed_s=30, total_cpu_s=0.0),
        element(3, "TIMEOUT", exit_code="0:15", elapsed_s=600, total_cpu_s=600.0),
        element(4, "OUT_OF_MEMORY", exit_code="0:125", max_rss_kb=1000 * 1024, elapsed_s=6),
        element(5, "CANCELLED by 0", elapsed_s=0, total_cpu_s=0.0, start=None),
        element(6, None, alloc_cpus=None, elapsed_s=None, max_rss_kb=None, total_cpu_s=None),  # sacct never had it
    ]
    figures = audit(elements, "author", *DAY).total
    core = 60 + 240 + 30 + 600 + 6 + 0
    assert (figures.elements, figures.completed, figures.not_completed, figures.missing) == (7, 2, 4, 1)
    assert figures.core_hours == pytest.approx(core / 3600)
    assert figures.wasted_core_hours == pytest.approx((30 + 600 + 6) / 3600)
    assert figures.cpu_efficiency == pytest.approx((30 + 180 + 0 + 600 + 30 + 0) / core)
    assert figures.memory_efficiency == pytest.approx((100 + 500 + 100 + 100 + 1000 + 100) / (6 * 1000))
    assert figures.time_efficiency == pytest.approx((60 + 120 + 30 + 600 + 6 + 0) / (6 * 600))
    # waits: 0, 1, 2, 3, 4 s (element 5 never started; element 6 started at 6 s)
    assert (figures.wait_median_s, figures.wait_p95_s) == (2.5, 6.0)
    assert figures.failures == {"CANCELLED by root": 1, "FAILED exit 3": 1, "OUT_OF_MEMORY": 1, "TIMEOUT": 1}


@pytest.mark.parametrize(("by", "keys"), [
    ("experiment", ["1 exp", "2 other"]), ("block", ["1 exp/b", "2 other/c"]), ("author", ["bob", "amy"]),
    ("queue", ["default", "long"]), ("partition", ["cpu", "-"]), ("algorithm", ["pkg.mod:fn", "x.y:z"]),
    ("node", ["n1", "n2"]),
])
def test_each_dimension_groups_by_its_own_name_largest_first(by, keys):
    elements = [element(0), element(1),
                element(2, experiment_id=2, experiment_name="other", block_name="c", author="amy", queue="long",
                        partition=None, algorithm="x.y:z", node="n2", elapsed_s=30)]
    result = audit(elements, by, *DAY)
    assert [g.key for g in result.groups] == keys
    assert [g.elements for g in result.groups] == [2, 1]
    assert sum(g.core_hours for g in result.groups) == pytest.approx(result.total.core_hours)


def test_an_unknown_dimension_names_the_valid_ones():
    with pytest.raises(ValueError, match="experiment, block, author, queue, mapping, partition, algorithm, node"):
        audit([], "user", *DAY)


@pytest.mark.parametrize(("state", "code", "reason"), [
    ("COMPLETED", "0:0", None), ("FAILED", "3:0", "FAILED exit 3"), ("FAILED", "0:9", "FAILED signal 9"),
    ("TIMEOUT", "0:15", "TIMEOUT"), ("NODE_FAIL", "0:0", "NODE_FAIL"), ("CANCELLED by 0", "0:0", "CANCELLED by root"),
    ("CANCELLED by 4294967294", "0:0", "CANCELLED by uid 4294967294"), ("CANCELLED+", "0:0", "CANCELLED"),
    (None, None, None),
])
def test_failure_reasons_say_why_in_words(state, code, reason):
    assert failure_reason(state, code) == reason


def test_a_memory_kill_accounted_as_failed_0_9_is_out_of_memory_by_the_pollers_verdict():
    assert failure_reason("FAILED", "0:9", "failed:out_of_memory") == "OUT_OF_MEMORY"
    assert failure_reason("FAILED", "0:9", "failed:failed") == "FAILED signal 9"  # a plain kill -9 stays that
    killed = element(0, "FAILED", exit_code="0:9", verdict="failed:out_of_memory")
    assert audit([killed], "queue", *DAY).total.failures == {"OUT_OF_MEMORY": 1}
    assert advise([killed], QUEUES).rows[0].out_of_memory == 1


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile([7.0], 0.95), percentile([], 0.5)) == (
        10.0, 19.0, 7.0, None)


def test_an_empty_period_has_no_figures_and_says_so():
    result = audit([], "queue", *DAY)
    assert result.groups == [] and result.total.elements == 0 and result.total.cpu_efficiency is None
    assert "no settled elements" in to_table(result)
    assert to_csv(result).splitlines()[1].startswith("queue,total,0,0,0,0,0.000000,0.000000,,,,,,")


def test_csv_and_json_carry_the_documented_columns_and_agree():
    elements = [element(0), element(1, "FAILED", exit_code="2:0", author="amy")]
    result = audit(elements, "author", *DAY)
    parsed = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert tuple(parsed[0]) == COLUMNS and [r["key"] for r in parsed] == ["amy", "bob", "total"]
    as_json = json.loads(to_json(result))
    for row, group in zip(parsed, [*as_json["groups"], as_json["total"]]):
        assert row["key"] == group["key"] and int(row["elements"]) == group["elements"]
        assert float(row["core_hours"]) == pytest.approx(group["core_hours"], abs=1e-6)
    assert parsed[0]["failures"] == "FAILED exit 2=1" and as_json["groups"][0]["failures"] == {"FAILED exit 2": 1}


def test_the_table_is_aligned_and_lists_failures_by_reason():
    elements = [element(0), element(1, "TIMEOUT", queue="a-much-longer-queue-name")]
    lines = to_table(audit(elements, "queue", *DAY)).splitlines()
    header, first, second, total = lines[1:5]
    assert len({len(line) for line in (header, first, second, total)}) == 1  # right-aligned numbers
    assert "TIMEOUT" in "\n".join(lines[5:])


QUEUES = {"default": QueueConfig("default", "cpu", 1000, 30, 1, 4), "long": QueueConfig("long", "long", 500, 10, 1, 4)}


def test_advice_tightens_an_oversized_limit_and_counts_what_it_would_kill():
    used = [element(i, max_rss_kb=(100 + i) * 1024, elapsed_s=60) for i in range(20)]  # 100..119 MB of 1000
    advice = advise(used, QUEUES)
    (memory, time) = advice.proposals
    # p95 (nearest rank) of 100..119 is 118 MB; x 1.25 = 147.5, up to the next 50 MB: 150
    assert (memory.queue, memory.key, memory.current, memory.proposed, memory.would_kill) == (
        "default", "memory_limit", 1000, 150, 0)
    assert (time.key, time.current, time.proposed) == ("time_limit", 30, 2)  # 1 min x 1.25, rounded up
    assert "[queues.default]" in advice.toml() and "memory_limit = 150  # was 1000" in advice.toml()
    (row,) = advice.rows
    assert (row.elements, row.p95_rss_mb, row.memory_limit_mb) == (20, 118.0, 1000)


def test_advice_raises_a_limit_that_killed_elements_and_stays_quiet_when_limits_fit():
    killed = [element(i, "OUT_OF_MEMORY", queue="long", max_rss_kb=500 * 1024) for i in range(2)]
    fitting = [element(i, queue="long", max_rss_kb=450 * 1024, elapsed_s=500) for i in range(2, 10)]
    (raise_memory,) = advise(killed + fitting, QUEUES).proposals
    assert (raise_memory.key, raise_memory.current, raise_memory.proposed) == ("memory_limit", 500, 750)
    assert advise(fitting, QUEUES).proposals == []
    few = advise([element(0)], QUEUES)  # one element says nothing about a limit
    assert few.proposals == [] and few.rows[0].elements == 1


def test_advice_names_queues_no_longer_configured():
    assert advise([element(0, queue="retired")], QUEUES).unknown_queues == ["retired"]


# -- reading the snapshots --------------------------------------------------------------

def _snapshot(i: int, end: datetime | None, **over) -> AccountingSnapshot:
    values = dict(split_id=i, split_status="C", experiment_id=1, experiment_name="exp", author="bob",
                  block_name="b", queue_name="default", algorithm="pkg.mod:fn", array_job_id=2602,
                  element_id=f"2602_{i}", status="complete", first_seen=T0, attempts=1, state="COMPLETED",
                  exit_code="0:0", alloc_cpus=1, elapsed_s=60, submit=T0, start=T0, end=end)
    values.update(over)
    return AccountingSnapshot(**values)


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def test_load_takes_what_ended_in_the_period_and_the_one_experiment_asked(db_url):
    sessions = create_session_factory(db_url)
    with sessions() as session:
        session.add_all([
            _snapshot(0, T0 + timedelta(minutes=1), start=T0 + timedelta(seconds=12.25)),
            _snapshot(1, T0 + timedelta(days=2)),
            _snapshot(2, None, first_seen=T0 + timedelta(minutes=2), status="unavailable", state=None, start=None),
            _snapshot(3, T0 + timedelta(minutes=3), experiment_id=9), _snapshot(4, T0 - timedelta(days=1)),
        ])
        session.commit()
        assert [e.element_id for e in load(session, *DAY)] == ["2602_0", "2602_2", "2602_3"]
        assert [e.element_id for e in load(session, *DAY, experiment_id=9)] == ["2602_3"]
        first, never_started, _ = load(session, *DAY)
        assert (first.author, first.algorithm, first.queue, first.alloc_cpus) == ("bob", "pkg.mod:fn", "default", 1)
        assert (first.submit, first.start, first.wait_s, never_started.wait_s) == (
            T0, T0 + timedelta(seconds=12.25), 12.25, None)  # the wait computed by the database
        lean = load(session, *DAY, times=False)[0]
        assert (lean.submit, lean.start, lean.end, lean.wait_s) == (None, None, None, 12.25)


def test_elements_without_figures_are_asked_of_sacct_once_per_500_and_nothing_is_written(env):
    recorded = (DATA / "sacct_usage.txt").read_text()
    bare = [element(i, None, alloc_cpus=None, elapsed_s=None)._replace(element_id=f"2602_{i % 3}")
            for i in range(3)]
    many = [element(i, None, alloc_cpus=None, elapsed_s=None)._replace(element_id=f"99_{i}") for i in range(1200)]
    env.fake.then("sacct_usage", Answer(recorded), Answer(), Answer())
    filled, report = fill_missing([element(50), *bare, *many], env.backend.client, T0)
    assert (report.asked, report.sacct_calls, report.found) == (1203, 3, 3)
    assert [(e.state, e.alloc_cpus, e.max_rss_kb) for e in filled[1:3]] == [
        ("COMPLETED", 1, 47324), ("FAILED", 1, 4932)]
    assert filled[0] == element(50)  # had its figures: not asked
    env.fake.then("sacct_usage", SACCT_DOWN)
    kept, failed = fill_missing(bare, env.backend.client, T0)
    assert failed.error and kept == bare


@pytest.mark.parametrize(("text", "expected"), [
    ("now", T0), ("7d", T0 - timedelta(days=7)), ("12h", T0 - timedelta(hours=12)), ("90s", T0 - timedelta(seconds=90)),
    ("2026-11-20", datetime(2026, 11, 20)), ("2026-11-20T08:30", datetime(2026, 11, 20, 8, 30)),
    ("2026-11-20T09:30+01:00", datetime(2026, 11, 20, 8, 30)),  # an offset is turned into UTC
])
def test_times_on_the_command_line_read_as_utc(text, expected):
    assert parse_when(text, T0) == expected


def test_a_bad_time_names_the_valid_forms():
    with pytest.raises(ValueError, match="'yesterday' is not a time: expected YYYY-MM-DD"):
        parse_when("yesterday", T0)
