"""Parsing sacct with its steps (bridge.accounting) on text recorded on the live cluster.

tests/data/sacct_usage.txt: one array of three elements under --mem=100 -t 2
(0 completed after ~2.5 s of CPU with 30 MB, 1 exited 3, 2 killed by
OverMemoryKill after growing past 100 MB) and a held array of four cancelled
before it started (one `J_[0-3]` row). No `.extern` step on this cluster
(no PrologFlags=contain): the trap lines below are the recorded ones, edited.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bridge.accounting import USAGE_FIELDS, cpu_seconds, kib, parse_usage
from bridge.slurm import sacct_argv

RECORDED = (Path(__file__).parent / "data" / "sacct_usage.txt").read_text()


def test_completed_element_reads_the_allocation_and_the_batch_step() -> None:
    usage = parse_usage(RECORDED).lookup("2602_0")
    assert usage is not None and usage.settled
    assert (usage.state, usage.exit_code, usage.partition, usage.account, usage.qos, usage.node_list) == (
        "COMPLETED", "0:0", "cpu", "root", "normal", "n1")
    assert (usage.alloc_cpus, usage.req_mem_mb, usage.max_rss_kb) == (1, 100, 47324)
    assert (usage.total_cpu_s, usage.elapsed_s, usage.timelimit_min) == (2.568, 3, 2)
    assert usage.submit == datetime(2026, 12, 1, 15, 34, 23)
    assert usage.start == datetime(2026, 12, 1, 15, 34, 24) and usage.end == datetime(2026, 12, 1, 15, 34, 27)


def test_failed_and_memory_killed_elements() -> None:
    table = parse_usage(RECORDED)
    failed, killed = table.lookup("2602_1"), table.lookup("2602_2")
    assert (failed.state, failed.exit_code, failed.max_rss_kb) == ("FAILED", "3:0", 4932)
    # OverMemoryKill: the allocation is FAILED 0:9, its batch step "CANCELLED by 0", its MaxRSS over --mem
    assert (killed.state, killed.exit_code, killed.max_rss_kb) == ("FAILED", "0:9", 139468)
    assert killed.max_rss_kb * 1024 > 100 * 1024 * 1024 and killed.settled


def test_cancelled_before_start_stands_for_every_element_of_its_range() -> None:
    table = parse_usage(RECORDED)
    for task in range(4):
        usage = table.lookup(f"2603_{task}")
        assert usage is not None and usage.element_id == f"2603_{task}"
        assert usage.state == "CANCELLED by 0" and usage.start is None and usage.eligible is None
        assert usage.node_list is None and usage.max_rss_kb is None and usage.settled
    assert table.lookup("2603_4") is None and table.lookup("9999_0") is None


def test_bare_cancelled_row_stands_for_never_started_elements_but_a_bare_failed_row_does_not() -> None:
    line = RECORDED.splitlines()[-1].replace("2603_[0-3]", "2603")
    assert parse_usage(line).lookup("2603_7").state == "CANCELLED by 0"
    assert parse_usage(line.replace("CANCELLED by 0", "FAILED")).lookup("2603_7") is None


def test_batch_step_not_ended_yet_is_not_settled() -> None:
    """sacct lags: End Unknown on the batch step (or the allocation) keeps the snapshot pending."""
    lines = RECORDED.splitlines()[:2]
    batch = lines[1].rsplit("|", 1)[0] + "|Unknown"
    assert not parse_usage("\n".join([lines[0], batch])).lookup("2602_0").settled
    assert not parse_usage(lines[0]).lookup("2602_0").settled  # no batch row yet
    allocation = lines[0].rsplit("|", 1)[0] + "|Unknown"
    assert not parse_usage("\n".join([allocation, lines[1]])).lookup("2602_0").settled


def test_traps_extern_step_duplicate_batch_rows_and_ntasks() -> None:
    """MaxRSS is the batch step's: not the .extern's, not a sum of duplicates, not times NTasks."""
    allocation, batch = RECORDED.splitlines()[:2]
    extern = batch.replace(".batch", ".extern").replace("47324K", "900000K")
    stale = batch.replace("47324K", "1000K").rsplit("|", 1)[0] + "|Unknown"
    srun = batch.replace(".batch", ".0").replace("47324K", "800000K").replace("|1|00:02", "|4|00:02")
    usage = parse_usage("\n".join([allocation, stale, batch, extern, srun, stale])).lookup("2602_0")
    assert usage.max_rss_kb == 47324 and usage.settled
    assert usage.total_cpu_s == 2.568  # the allocation's TotalCPU, steps not added again


def test_bad_lines_are_skipped() -> None:
    text = "garbage\n\n" + RECORDED.splitlines()[0].replace("2602_0", "x_y") + "\n" + RECORDED
    assert sorted(parse_usage(text).elements) == ["2602_0", "2602_1", "2602_2"]


def test_units() -> None:
    assert [kib("47324K"), kib("1.5M"), kib("2G"), kib("0"), kib(""), kib("100Mc", 2)] == [
        47324, 1536, 2 * 1024 * 1024, 0, None, 204800]
    assert [cpu_seconds("00:02.568"), cpu_seconds("01:02:03"), cpu_seconds("1-00:00:01"), cpu_seconds("")] == [
        2.568, 3723.0, 86401.0, None]


def test_argv_reads_steps_in_utc_window() -> None:
    argv = sacct_argv(datetime(2026, 12, 1, 15, 0), None, ["2602_0", "2603"], fields=USAGE_FIELDS,
                      allocations=False)
    assert "-X" not in argv and argv[argv.index("-S") + 1] == "2026-12-01T15:00:00"
    assert argv[argv.index("-j") + 1] == "2602_0,2603" and "MaxRSS" in argv[argv.index("--parsable2") + 2]


def test_a_sub_second_element_has_no_max_rss_ever_and_is_settled_without_one() -> None:
    """Recorded: an element of 0 s; sacct samples memory each second, so its batch step's MaxRSS stays empty."""
    text = (Path(__file__).parent / "data" / "sacct_usage_short.txt").read_text()
    usage = parse_usage(text).lookup("2616_0")
    assert usage.settled and usage.max_rss_kb is None and usage.elapsed_s == 0 and usage.state == "COMPLETED"
