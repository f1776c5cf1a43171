"""Failure-aware resubmission's pure parts: the decision, the policy in queues.toml, its lint, --exclude, the cache.

The whole path (poll -> resubmit -> submit -> settle) is tests/test_resubmit_replay.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cache import is_cache_complete
from bridge.devcluster.sandbox import queue_toml
from bridge.errors import ConfigError
from bridge.failure_policy import FailurePolicy, OnFailure
from bridge.models import ExperimentStatus as E
from bridge.models import SplitStatus as S
from bridge.queue_lint_failures import failure_findings
from bridge.queues_config import load_queues
from bridge.resubmission import decide, with_exclude
from bridge.sbatch_scripts.element_io import IOStats, read_cached, write_output

OOM = OnFailure(retries=1, resubmit_to="big")
NODE = OnFailure(retries=2, exclude_node=True)


def _decide(reason="out_of_memory", rule=OOM, **facts):
    given = dict(ran_on="small", done=0, split=S.PROCESSING, experiment=E.RUNNING, sibling_failed=False, node="n1")
    given.update(facts)
    return decide(reason, rule, **given)


# --- the decision ---------------------------------------------------------------------------------


def test_a_configured_failure_with_retries_left_is_resubmitted_to_the_named_queue():
    decision = _decide()
    assert (decision.resubmit, decision.queue, decision.exclude) == (True, "big", ())
    assert decision.why == "retry 1 of 1 to queue 'big'"


def test_a_node_failure_stays_on_its_queue_and_adds_the_node_to_those_already_excluded():
    decision = _decide("node_fail", NODE, done=1, node="n2", excluded=("n1",))
    assert (decision.resubmit, decision.queue, decision.exclude) == (True, "small", ("n1", "n2"))
    assert _decide("node_fail", NODE, node="None assigned").exclude == ()  # no node known: nothing to avoid


@pytest.mark.parametrize(("facts", "why"), [
    ({"rule": None}, "queue 'small' has no on_out_of_memory"),
    ({"reason": "failed", "rule": None}, "failed is never resubmitted"),
    ({"done": 1}, "on_out_of_memory.retries = 1 used up"),
    ({"sibling_failed": True}, "a sibling split has failed"),
    ({"experiment": E.CANCELLING}, "its experiment is cancelling"),
    ({"experiment": E.FAILED}, "its experiment is failed"),
    ({"split": S.CANCELLING}, "the split is cancelling"),
])
def test_no_resubmission_when(facts, why):
    decision = _decide(**facts)
    assert (decision.resubmit, decision.why, decision.queue) == (False, why, None)


def test_retries_count_every_resubmission_for_that_failure_whichever_queue_it_ran_on():
    assert _decide(rule=OnFailure(retries=2, resubmit_to="huge"), ran_on="big", done=1).resubmit
    assert not _decide(rule=OnFailure(retries=2, resubmit_to="huge"), ran_on="big", done=2).resubmit


# --- queues.toml ----------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str, errors=None):
    path = tmp_path / "queues.toml"
    path.write_text(text)
    return load_queues(path, errors=errors)


def test_the_loader_reads_each_on_table_and_leaves_the_others_off(tmp_path):
    queues = _load(tmp_path, queue_toml("small", extra=(
        'on_node_fail = { retries = 2, exclude_node = true }\n'
        'on_out_of_memory = { resubmit_to = "big", retries = 1 }\non_timeout = { resubmit_to = "big" }\n'))
        + queue_toml("big", memory_limit=600, time_limit=60))
    small = queues["small"].failures
    assert small.for_reason("node_fail") == OnFailure(2, None, True)
    assert small.for_reason("out_of_memory") == OnFailure(1, "big", False)
    assert small.for_reason("timed_out") == OnFailure(1, "big", False)
    assert small.for_reason("failed") is None
    assert queues["big"].failures == FailurePolicy() and not queues["big"].failures


@pytest.mark.parametrize(("table", "message"), [
    ('on_timeout = { resubmit_to = "nowhere" }',
     "queues.small.on_timeout.resubmit_to = 'nowhere' is invalid: expected a queue of this file: big, small"),
    ("on_node_fail = { retries = 0 }",
     "queues.small.on_node_fail.retries = 0 is invalid: expected an integer from 1 to 10"),
    ("on_node_fail = { exclude = true }",
     "unknown key queues.small.on_node_fail.exclude in [queues.small.on_node_fail] "
     "(valid keys: exclude_node, resubmit_to, retries)"),
    ("on_out_of_memory = 2", "queues.small.on_out_of_memory = 2 is invalid: expected a table"),
    ("on_memory = { retries = 1 }", "unknown key queues.small.on_memory"),
])
def test_the_loader_names_the_file_and_key_of_a_bad_policy(tmp_path, table, message):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, queue_toml("small", extra=table) + queue_toml("big"))
    assert str(tmp_path / "queues.toml") in str(error.value) and message in str(error.value)


def test_queues_check_gets_a_bad_target_as_the_queue_s_load_error_and_keeps_the_others(tmp_path):
    errors: dict[str, ConfigError] = {}
    queues = _load(tmp_path, queue_toml("small", extra='on_timeout = { resubmit_to = "nowhere" }')
                   + queue_toml("big"), errors=errors)
    assert list(queues) == ["big"] and "on_timeout.resubmit_to = 'nowhere'" in str(errors["small"])


# --- queues check ----------------------------------------------------------------------------------


def test_lint_wants_more_memory_for_an_out_of_memory_retry_and_more_time_for_a_timeout(tmp_path):
    queues = _load(tmp_path, queue_toml("small", memory_limit=300, time_limit=10, extra=(
        'on_out_of_memory = { resubmit_to = "long" }\non_timeout = { resubmit_to = "long" }\n'
        'on_node_fail = { resubmit_to = "long" }\n'))
        + queue_toml("long", memory_limit=200, time_limit=120, extra='on_out_of_memory = { retries = 1 }'))
    assert [f.line() for f in failure_findings(queues["small"], queues)] == [
        "queues.small.on_out_of_memory.resubmit_to = 'long': queue 'long' has 200 MB: the retry gets no more "
        "memory_limit than the 300 MB it failed with; allowed: a queue with memory_limit over 300 MB"]
    (same,) = failure_findings(queues["long"], queues)
    assert (same.key, same.value, same.rule) == ("on_out_of_memory.resubmit_to", "long", "resubmit_larger")
    assert same.problem.startswith("resubmits to the same queue")


def test_lint_accepts_larger_targets(tmp_path):
    queues = _load(tmp_path, queue_toml("small", extra=(
        'on_out_of_memory = { resubmit_to = "big" }\non_timeout = { resubmit_to = "big" }\n'))
        + queue_toml("big", memory_limit=600, time_limit=60))
    assert failure_findings(queues["small"], queues) == []


# --- the array's --exclude, and the cache a second attempt writes --------------------------------------


def test_exclude_is_added_or_merged_into_the_admin_s_own():
    assert with_exclude(("--constraint=x",), None) == ("--constraint=x",)
    assert with_exclude(("--constraint=x",), "n1") == ("--constraint=x", "--exclude=n1")
    assert with_exclude(("--exclude=n9",), "n1,n2") == ("--exclude=n9,n1,n2",)


def test_a_second_attempt_overwrites_the_range_a_killed_first_attempt_left_behind(tmp_path):
    """Each cache file is written to a temporary name and renamed (element_io.atomic_write): the second
    attempt replaces the first's files of the same range, and a first attempt killed half-way leaves
    nothing a reader takes for complete."""
    write_output(tmp_path, "ab/cd/out", 0, [1, 2], IOStats())
    stale = sorted(tmp_path.glob("ab/cd/out.0.1.*"))
    stale[0].write_bytes(b'{"index":0,"value":"killed mid-write"}\n')  # .data no longer matches its checksum
    assert not is_cache_complete("ab/cd/out", 1, tmp_path)
    write_output(tmp_path, "ab/cd/out", 0, [10, 20], IOStats())
    assert is_cache_complete("ab/cd/out", 1, tmp_path)
    assert read_cached(tmp_path, "ab/cd/out", (0, 1), IOStats()) == [10, 20]
    assert sorted(p.name for p in (tmp_path / "ab" / "cd").iterdir()) == [
        "out.0.1.data", "out.0.1.data.checksum", "out.0.1.index", "out.0.1.index.checksum"]
