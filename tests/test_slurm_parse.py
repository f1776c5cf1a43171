"""Slurm argv builders and parsers, on text recorded from the local Slurm 22.05 cluster.

scontrol_show_config.txt, scontrol_show_partition.txt and sinfo_nodes.txt were saved
from the local cluster (`beat-bridge cluster up`) right after it started (nodes still
"inval"); the error lines below were printed by `sbatch --test-only` there.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bridge.errors import BridgeError
from bridge.slurm import (
    SACCT_FIELDS,
    NodeInfo,
    SlurmParseError,
    is_transient,
    max_array_size,
    parse_key_values,
    parse_sbatch_parsable,
    parse_scontrol_show_config,
    parse_scontrol_show_partition,
    parse_sinfo_nodes,
    parse_slurm_duration,
    permanent_reason,
    sacct_argv,
    sacct_argvs,
    sbatch_argv,
    scancel_argv,
    scontrol_show_partition_argv,
    sinfo_nodes_argv,
)

DATA = Path(__file__).parent / "data"


def test_sbatch_argv_reads_the_script_from_stdin() -> None:
    assert sbatch_argv() == ["sbatch", "--parsable"]


@pytest.mark.parametrize(("stdout", "job_id"), [("123\n", 123), ("4567;beatlocal\n", 4567), ("warn\n89\n", 89)])
def test_parse_sbatch_parsable(stdout: str, job_id: int) -> None:
    assert parse_sbatch_parsable(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "\n", "Submitted batch job 12\n", "12;\n", "abc"])
def test_parse_sbatch_parsable_rejects(stdout: str) -> None:
    with pytest.raises(SlurmParseError, match="no job id"):
        parse_sbatch_parsable(stdout)


def test_sacct_argv_one_bounded_query() -> None:
    argv = sacct_argv(datetime(2026, 11, 25, 12, 0, 5), datetime(2026, 11, 25, 13, 0), job_ids=[12, "13"])
    assert argv == [
        "sacct", "-X", "--parsable2", "--noheader", "--format=" + ",".join(SACCT_FIELDS),
        "-S", "2026-11-25T12:00:05", "-E", "2026-11-25T13:00:00", "-j", "12,13",
    ]
    assert "--format=JobID,JobIDRaw,JobName,Partition,State,ExitCode,NodeList,Submit,Start,End,Comment" in argv


def test_sacct_argv_by_names_and_default_end() -> None:
    argv = sacct_argv(datetime(2026, 1, 2, 3, 4, 5), names=["bb-a", "bb-b"], fields=("JobID", "State"))
    assert argv[4:] == ["--format=JobID,State", "-S", "2026-01-02T03:04:05", "-E", "now", "--name", "bb-a,bb-b"]
    with pytest.raises(BridgeError):
        sacct_argv(datetime(2026, 1, 1), names=["a,b"])


def test_sacct_argvs_chunks_long_id_lists() -> None:
    argvs = sacct_argvs(datetime(2026, 1, 1), None, list(range(1, 1201)), chunk=500)
    assert [a[a.index("-j") + 1].count(",") + 1 for a in argvs] == [500, 500, 200]
    assert argvs[0][argvs[0].index("-j") + 1].startswith("1,2,3,")
    assert sacct_argvs(datetime(2026, 1, 1), None, []) == []


def test_scancel_argv() -> None:
    assert scancel_argv(["12_3", "12_4", "15"]) == ["scancel", "12_3", "12_4", "15"]
    for bad in ([], ["12_[1-3]"], ["-u root"], ["12; rm"]):
        with pytest.raises(BridgeError):
            scancel_argv(bad)


def test_parse_scontrol_show_config_recorded() -> None:
    config = parse_scontrol_show_config((DATA / "scontrol_show_config.txt").read_text())
    assert max_array_size(config) == 1001
    assert config["SLURM_VERSION"] == "22.05.8"
    assert config["SelectType"] == "select/cons_tres"
    assert config["SuspendRate"] == "60 nodes/min"
    assert "Configuration data as of 2026-11-25T12:21:56" not in config


def test_parse_scontrol_show_config_edge_cases() -> None:
    config = parse_scontrol_show_config("A = 1\nSchedulerParameters = sched_interval=1,bf_interval=1\nA = 2\n")
    assert config == {"A": "1", "SchedulerParameters": "sched_interval=1,bf_interval=1"}
    assert max_array_size({}) == 1001
    assert max_array_size({"MaxArraySize": "40001"}) == 40001


def test_parse_scontrol_show_partition_recorded() -> None:
    assert scontrol_show_partition_argv() == ["scontrol", "-o", "show", "partition"]
    partitions = parse_scontrol_show_partition((DATA / "scontrol_show_partition.txt").read_text())
    by_name = {p["PartitionName"]: p for p in partitions}
    assert list(by_name) == ["cpu", "long", "debug"]
    assert by_name["cpu"]["Default"] == "YES" and by_name["cpu"]["Nodes"] == "n[1-2]"
    assert [parse_slurm_duration(by_name[n]["MaxTime"]) for n in by_name] == [60, 1440, 5]
    assert by_name["cpu"]["TRES"] == "cpu=8,mem=8000M,node=2,billing=8"
    assert by_name["debug"]["MaxNodes"] == "1"


def test_parse_key_values_joins_words_without_equals() -> None:
    assert parse_key_values("A=1 Reason=Not responding B=2") == {"A": "1", "Reason": "Not responding", "B": "2"}


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("5", 5), ("00:05:00", 5), ("01:00:00", 60), ("1-00:00:00", 1440), ("2-3", 3060), ("1-0:30", 1470),
     ("10:30", 11), ("00:00:01", 1), ("UNLIMITED", None), ("INFINITE", None)],
)
def test_parse_slurm_duration(text: str, minutes: int | None) -> None:
    assert parse_slurm_duration(text) == minutes


@pytest.mark.parametrize("text", ["", "1h", "1-", "a:b", "NONE"])
def test_parse_slurm_duration_rejects(text: str) -> None:
    with pytest.raises(SlurmParseError):
        parse_slurm_duration(text)


def test_parse_sinfo_nodes_recorded() -> None:
    assert sinfo_nodes_argv() == ["sinfo", "-N", "-h", "-o", "%N|%P|%c|%m|%T"]
    nodes = parse_sinfo_nodes((DATA / "sinfo_nodes.txt").read_text())
    assert nodes == [
        NodeInfo("n1", ("cpu", "debug", "long"), 4, 4000, "inval"),
        NodeInfo("n2", ("cpu", "debug", "long"), 4, 4000, "inval"),
    ]
    assert not any(n.usable for n in nodes)


def test_parse_sinfo_nodes_states_and_bad_lines(caplog: pytest.LogCaptureFixture) -> None:
    text = "n1|cpu*|4|4000|idle\nn2|cpu*|4|4000|idle*\nn3|cpu|x|1|idle\n\ngarbage\nn4|cpu|2|100+|mixed\n"
    nodes = {n.name: n for n in parse_sinfo_nodes(text)}
    assert set(nodes) == {"n1", "n2", "n4"}
    assert nodes["n1"].usable and not nodes["n2"].usable and nodes["n4"].usable
    assert nodes["n4"].memory_mb == 100
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 2


# Seen on the local cluster (sbatch --test-only) and, for the transient ones, in slurm-notes.md.
PERMANENT = [
    "sbatch: error: invalid partition specified: nope\nallocation failure: Invalid partition name specified",
    "sbatch: error: Batch job submission failed: Invalid partition name specified",
    "allocation failure: Requested time limit is invalid (missing or exceeds some limit)",
    "sbatch: error: Batch job submission failed: Requested time limit is invalid (missing or exceeds some limit)",
    "allocation failure: More processors requested than permitted",
    "sbatch: error: Batch job submission failed: Requested node configuration is not available",
    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy "
    "(job submit limit, user's size and/or time limits)",
    "sbatch: error: Batch job submission failed: Invalid qos specification",
    "allocation failure: Invalid job array specification",
    "sbatch: error: Batch job submission failed: Something new nobody has seen",
]
TRANSIENT = [
    "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation",
    "sbatch: error: Batch job submission failed: Resource temporarily unavailable",
    "sbatch: error: Unable to contact slurm controller (connect failure)",
    "sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying",
    "sacct: error: Problem talking to the database: Connection refused",
    "sacct: error: slurm_persist_conn_open_without_init: "
    "failed to open persistent connection to host:127.0.0.1:16819: Connection refused",
    "squeue: error: slurm_receive_msg: Zero Bytes were transmitted or received",
]


@pytest.mark.parametrize("stderr", PERMANENT)
def test_permanent_errors(stderr: str) -> None:
    assert not is_transient(stderr)
    reason = permanent_reason(stderr)
    assert reason is not None and reason in stderr and "\n" not in reason


@pytest.mark.parametrize("stderr", TRANSIENT)
def test_transient_errors(stderr: str) -> None:
    assert is_transient(stderr)
    assert permanent_reason(stderr) is None


def test_unknown_error_is_neither() -> None:
    assert not is_transient("sacct: fatal: weird")
    assert permanent_reason("sacct: fatal: weird") is None
