"""The one table from Slurm state to outcome, and the out-of-memory classifier."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bridge.sacct import latest_by_element, parse_sacct
from poller.states import ACTIVE, STATES, TERMINAL, Outcome, is_out_of_memory, judge, known_state, outcome_of

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("COMPLETED", Outcome.DONE),
        ("COMPLETED+", Outcome.DONE),
        ("CANCELLED", Outcome.CANCELLED),
        ("CANCELLED by 0", Outcome.CANCELLED),
        ("CANCELLED+", Outcome.CANCELLED),
        ("RUNNING", Outcome.STARTED),
        ("COMPLETING", Outcome.STARTED),
        ("PENDING", Outcome.ACTIVE),
        ("CONFIGURING", Outcome.ACTIVE),
        ("REQUEUED", Outcome.ACTIVE),
        ("RESIZING", Outcome.ACTIVE),
        ("SUSPENDED", Outcome.ACTIVE),
    ]
    + [
        (s, Outcome.FAILED)
        for s in ("FAILED", "OUT_OF_MEMORY", "TIMEOUT", "DEADLINE", "BOOT_FAIL", "NODE_FAIL", "PREEMPTED")
    ],
)
def test_table(state: str, outcome: Outcome) -> None:
    assert outcome_of(state) is outcome


def test_outcome_is_a_str_enum_and_sets_partition_it() -> None:
    assert Outcome.DONE == "done"
    assert TERMINAL | ACTIVE == set(Outcome) and not TERMINAL & ACTIVE


@pytest.mark.parametrize("state", ["SOMETHING_NEW", "", "   "])
def test_unknown_state_stays_active(state: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the poller warns once per split (poller.unknown), not on every look-up
    assert outcome_of(state) is Outcome.ACTIVE and not known_state(state)
    assert "unknown Slurm state" in caplog.text
    assert not judge(state).terminal


@pytest.mark.parametrize(
    ("state", "exit_code", "signal", "reason"),
    [
        ("FAILED", 3, 0, "failed"),
        ("TIMEOUT", 0, 0, "timed_out"),
        ("OUT_OF_MEMORY", 0, 125, "out_of_memory"),
        ("FAILED", 0, 9, "failed"),  # a SIGKILL alone is no memory evidence
        ("DEADLINE", 0, 0, "deadline"),
        ("BOOT_FAIL", 0, 0, "boot_fail"),
        ("NODE_FAIL", 1, 0, "node_fail"),
        ("PREEMPTED", 0, 0, "preempted"),
    ],
)
def test_fail_reasons(state: str, exit_code: int, signal: int, reason: str) -> None:
    verdict = judge(state, exit_code, signal)
    assert verdict.outcome is Outcome.FAILED and verdict.reason == reason
    assert verdict.timed_out is (reason == "timed_out")
    assert verdict.exit_code == exit_code and f"ExitCode {exit_code}:{signal}" in verdict.message
    assert state in verdict.message


def test_failed_exit_code_in_message() -> None:
    assert "exited with code 3" in judge("FAILED", 3, 0).message


def test_non_failures_have_no_reason() -> None:
    for state in ("COMPLETED", "CANCELLED by 0", "RUNNING", "PENDING"):
        verdict = judge(state)
        assert verdict.reason is None and not verdict.timed_out


STDERR_OOM = (
    "slurmstepd: error: Job 57 exceeded memory limit (614400 > 102400), being killed\n"
    "slurmstepd: error: Exceeded job memory limit\n"
)


def test_out_of_memory_classifier() -> None:
    assert is_out_of_memory("OUT_OF_MEMORY")
    assert not is_out_of_memory("FAILED")  # 22.05 without cgroups says FAILED 0:9 for any SIGKILL
    assert is_out_of_memory("FAILED", STDERR_OOM)
    assert judge("FAILED", 1, 0, STDERR_OOM).reason == "out_of_memory"
    assert not is_out_of_memory("FAILED", "Traceback: ValueError\n")
    assert not is_out_of_memory("CANCELLED", STDERR_OOM)
    assert not is_out_of_memory("TIMEOUT", STDERR_OOM)
    assert judge("TIMEOUT", 0, 9, STDERR_OOM).reason == "timed_out"


def test_every_table_entry_is_known() -> None:
    assert all(outcome in Outcome for outcome, _ in STATES.values())
    assert {s for s, (o, _) in STATES.items() if o is Outcome.FAILED} >= {
        "FAILED", "OUT_OF_MEMORY", "TIMEOUT", "DEADLINE", "BOOT_FAIL", "NODE_FAIL", "PREEMPTED"
    }


def test_verdicts_on_the_mixed_sample() -> None:
    elements = latest_by_element(parse_sacct((DATA / "sacct_mixed.txt").read_text()))
    verdicts = {f"{a}_{t}": judge(r.state_text, r.exit_code, r.signal) for (a, t), r in elements.items()}
    assert verdicts["41_0"].outcome is Outcome.DONE
    assert (verdicts["41_1"].outcome, verdicts["41_1"].exit_code) == (Outcome.FAILED, 3)
    assert verdicts["41_2"].outcome is Outcome.CANCELLED
    assert verdicts["41_3"].timed_out
    assert (verdicts["41_4"].reason, verdicts["41_4"].signal) == ("failed", 9)  # FAILED 0:9, no stderr read
    assert verdicts["41_5"].outcome is Outcome.STARTED
    assert verdicts["41_6"].outcome is Outcome.ACTIVE
    assert verdicts["53_4"].outcome is Outcome.ACTIVE


def test_verdicts_on_the_real_array10_sample() -> None:
    elements = latest_by_element(parse_sacct((DATA / "sacct_array10.txt").read_text()))
    verdicts = {t: judge(r.state_text, r.exit_code, r.signal) for (_, t), r in elements.items()}
    assert [verdicts[t].outcome for t in range(10)] == [
        Outcome.DONE, Outcome.DONE, Outcome.DONE, Outcome.FAILED, Outcome.DONE,
        Outcome.CANCELLED, Outcome.DONE, Outcome.FAILED, Outcome.DONE, Outcome.DONE,
    ]
    assert (verdicts[3].reason, verdicts[3].exit_code) == ("failed", 3)
    assert verdicts[7].timed_out and verdicts[7].reason == "timed_out"


RECORDED_OOM = (DATA / "stderr" / "over_memory_kill.err").read_text().replace("{job}", "57")


@pytest.mark.parametrize("stderr", [None, "", "Traceback (most recent call last):\n  ...\nKilled\n"])
def test_a_plain_sigkill_without_memory_evidence_is_not_out_of_memory(stderr: str | None) -> None:
    verdict = judge("FAILED", 0, 9, stderr)
    assert (verdict.outcome, verdict.reason) == (Outcome.FAILED, "failed")
    assert "signal 9" in verdict.message and "memory" not in verdict.message


def test_memory_words_printed_by_the_algorithm_are_not_slurms_evidence() -> None:
    printed = "MemoryError: out of memory\nmy_alg: oom-kill of the cache, Exceeded job memory limit?\n"
    assert judge("FAILED", 0, 9, printed).reason == "failed"


def test_slurmstepds_recorded_memory_kill_lines_are_out_of_memory() -> None:
    verdict = judge("FAILED", 0, 9, RECORDED_OOM)
    assert verdict.reason == "out_of_memory" and "memory limit" in verdict.message
    assert "StepId=57.batch exceeded memory limit (642703360 > 104857600)" in verdict.message
    cgroup = ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=57.batch. Some of your processes "
              "may have been killed by the cgroup out-of-memory handler.\n")
    assert judge("FAILED", 0, 9, cgroup).reason == "out_of_memory"
    assert judge("OUT_OF_MEMORY", 0, 125).reason == "out_of_memory"  # task/cgroup's own state
