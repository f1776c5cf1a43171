"""The partition rules of `queues check` on recorded and hand-made `scontrol show partition` text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge import slurm as cmds
from bridge.errors import ConfigError
from bridge.queue_lint import Finding, access_findings, load_finding, partition_findings, slurm_limit
from bridge.queues_config import QueueConfig, load_queues

DATA = Path(__file__).parent / "data"
GOOD = QueueConfig("default", "cpu", memory_limit=1000, time_limit=30, cores_per_slot=1, max_slots_per_user=4)
NODES = (cmds.NodeInfo("n1", ("cpu", "long", "debug", "gpu"), 4, 4000, "idle"),
         cmds.NodeInfo("n2", ("cpu", "long", "debug", "old"), 4, 4000, "idle"))


def _partitions() -> dict[str, dict[str, str]]:
    text = (DATA / "scontrol_show_partition.txt").read_text() + (DATA / "lint" /
                                                                  "scontrol_show_partition_restricted.txt").read_text()
    return {p["PartitionName"]: p for p in cmds.parse_scontrol_show_partition(text)}


def _rules(queue: QueueConfig) -> list[str]:
    return [f.rule for f in partition_findings(queue, _partitions(), NODES)]


def test_a_queue_within_every_limit_has_no_finding():
    for partition in ("cpu", "long"):
        assert partition_findings(replace(GOOD, partition=partition), _partitions(), NODES) == []


def test_an_unknown_partition_names_the_valid_ones():
    [finding] = partition_findings(replace(GOOD, partition="nope"), _partitions(), NODES)
    assert finding.line() == ("queues.default.partition = 'nope': no such partition on the cluster; "
                              "allowed: cpu, debug, empty, gpu, long, old")


def test_max_time_names_key_value_and_what_the_partition_allows():
    [finding] = partition_findings(replace(GOOD, partition="debug"), _partitions(), NODES)
    assert finding == Finding("default", "time_limit", 30, "over the MaxTime of partition 'debug'",
                              "at most 5 min", "max_time")
    assert finding.line() == ("queues.default.time_limit = 30: over the MaxTime of partition 'debug'; "
                              "allowed: at most 5 min")


def test_a_drained_partition_is_named():
    assert _rules(replace(GOOD, partition="old")) == ["state"]


def test_memory_over_max_mem_per_node_and_the_nodes():
    assert _rules(replace(GOOD, partition="old", memory_limit=3000)) == ["state", "max_mem_per_node"]
    assert _rules(replace(GOOD, memory_limit=5000)) == ["node_memory"]


def test_memory_per_cpu_counts_the_cores_of_a_slot():
    gpu = replace(GOOD, partition="gpu", memory_limit=2000)
    assert _rules(gpu) == ["max_mem_per_cpu"]
    assert "at most 1000 MB" in partition_findings(gpu, _partitions(), NODES)[0].allowed
    assert _rules(replace(gpu, cores_per_slot=2)) == []


def test_cpus_over_max_cpus_per_node_and_the_nodes():
    assert _rules(replace(GOOD, partition="gpu", cores_per_slot=3, memory_limit=100)) == ["max_cpus_per_node"]
    assert _rules(replace(GOOD, cores_per_slot=8)) == ["node_cpus"]


def test_a_partition_without_nodes():
    assert _rules(replace(GOOD, partition="empty")) == ["nodes"]


def test_each_limit_is_reported_at_once():
    bad = replace(GOOD, partition="debug", time_limit=30, memory_limit=5000, cores_per_slot=8)
    assert _rules(bad) == ["max_time", "node_memory", "node_cpus"]


@pytest.mark.parametrize(
    ("partition", "account", "qos", "rules"),
    [("cpu", "root", "normal", []), ("gpu", "beat", "high", []), ("gpu", "root", "high", ["allowaccounts"]),
     ("gpu", "beat", "normal", ["allowqos"]), ("old", "root", "high", ["denyaccounts"]),
     ("old", "beat", "normal", ["denyqos"]), ("gpu", None, None, [])],
)
def test_allow_and_deny_lists(partition: str, account: str | None, qos: str | None, rules: list[str]):
    queue = replace(GOOD, partition=partition, account=account, qos=qos)
    found = access_findings(queue, _partitions()[partition], account, qos)
    assert [f.rule for f in found] == rules


def test_the_account_slurm_picks_is_checked_and_said_to_be_picked():
    queue = replace(GOOD, partition="gpu")
    [finding] = access_findings(queue, _partitions()["gpu"], "root", None, "chosen by Slurm for user root")
    assert finding.line() == ("queues.default.account = 'root (chosen by Slurm for user root)': not in the "
                              "AllowAccounts of partition 'gpu'; allowed: beat")


@pytest.mark.parametrize(("text", "value"), [("UNLIMITED", None), ("0", None), ("4000", 4000), ("4000M", 4000),
                                             ("2G", 2048)])
def test_slurm_limits(text: str, value: int | None):
    assert slurm_limit(text) == value


def test_slurm_limit_refuses_what_it_cannot_read():
    with pytest.raises(cmds.SlurmParseError):
        slurm_limit("lots")


def test_a_queue_the_loader_refused_is_a_finding_with_its_key(tmp_path):
    path = tmp_path / "queues.toml"
    path.write_text('[queues.ok]\npartition = "cpu"\nmemory_limit = 1\ntime_limit = 1\ncores_per_slot = 1\n'
                    'max_slots_per_user = 1\n[queues.bad]\npartition = "cpu"\nmemory_limit = 1\ntime_limit = 1\n'
                    'cores_per_slot = 1\nmax_slots_per_user = 1\nextra_directives = ["-t 10"]\n')
    errors: dict[str, ConfigError] = {}
    assert list(load_queues(path, errors=errors)) == ["ok"]
    finding = load_finding("bad", errors["bad"])
    assert (finding.queue, finding.key, finding.rule) == ("bad", "extra_directives[0]", "load")
    assert finding.line().startswith("queues.bad.extra_directives[0] = '-t 10' is invalid")
    assert "short form of --time" in finding.line() and str(tmp_path) not in finding.line()
