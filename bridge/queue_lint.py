"""The queue mapping against one partition: what `scontrol show partition` and the nodes allow.

Pure rules, one Finding each, so `beat-bridge queues check` names every problem
at once instead of letting sbatch refuse arrays one by one. The facts are read
by bridge.queue_lint_run; accounts, QOS and associations are checked by
bridge.queue_lint_accounts, the rendered script there too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge import slurm as cmds
from bridge.errors import ConfigError
from bridge.queues_config import QueueConfig
from bridge.values import printable

UNLIMITED = {"", "UNLIMITED", "INFINITE", "NONE", "0"}  # scontrol's words for "no limit" (0 for memory limits)


@dataclass(frozen=True)
class Finding:
    """One problem of one queue: the queues.toml key, its value, what is wrong and what the cluster allows."""

    queue: str
    key: str  # "time_limit", "extra_directives[0]", "account"...; "" when no single key is at fault
    value: Any
    problem: str
    allowed: str = ""
    rule: str = ""  # the kind of check ("max_time", "association", "sbatch_test_only"...): stable for scripts

    def line(self) -> str:
        """`queues.<queue>.<key> = <value>: <problem>; allowed: <allowed>`, printable.

        A queue the loader refused is its message as is: it names the key, the value and what is valid.
        """
        if self.rule == "load":
            return printable(self.problem)
        where = f"queues.{self.queue}" + (f".{self.key}" if self.key else "")
        value = "" if self.value is None else f" = {self.value!r}"
        allowed = f"; allowed: {self.allowed}" if self.allowed else ""
        return printable(f"{where}{value}: {self.problem}{allowed}")

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "key": self.key, "value": self.value, "problem": self.problem,
                "allowed": self.allowed, "rule": self.rule}


def load_finding(queue: str, error: ConfigError) -> Finding:
    """A queue queues.toml's loader refused (a clashing directive, a bad template...), as a finding.

    The loader's message already names the key, the value and what is valid; only the file is cut off.
    """
    text = str(error)
    message = text.split(": ", 1)[1] if text.startswith("/") and ": " in text else text
    match = re.match(rf"(?:required key )?queues\.{re.escape(queue)}\.([\w\-\[\].]+)", message)
    return Finding(queue, match.group(1) if match else "", None, message, rule="load")


def partition_findings(queue: QueueConfig, partitions: Mapping[str, Mapping[str, str]],
                       nodes: Sequence[cmds.NodeInfo]) -> list[Finding]:
    """The queue against its partition's State, MaxTime, memory and CPU limits, and the nodes in it."""
    part = partitions.get(queue.partition)
    if part is None:
        return [Finding(queue.name, "partition", queue.partition, "no such partition on the cluster",
                        ", ".join(sorted(partitions)) or "none", "partition")]
    name, found = queue.partition, []
    state = part.get("State", "UP")
    if state != "UP":  # DOWN queues and never starts; DRAIN and INACTIVE refuse new jobs (scontrol(1))
        found.append(Finding(queue.name, "partition", name, f"partition {name!r} is {state}", "State=UP", "state"))
    max_time = cmds.parse_slurm_duration(part.get("MaxTime", "UNLIMITED"))
    if max_time is not None and queue.time_limit > max_time:
        found.append(Finding(queue.name, "time_limit", queue.time_limit, f"over the MaxTime of partition {name!r}",
                             f"at most {max_time} min", "max_time"))
    found += _memory(queue, part)
    max_cpus = slurm_limit(part.get("MaxCPUsPerNode", "UNLIMITED"))
    if max_cpus is not None and queue.cores_per_slot > max_cpus:
        found.append(Finding(queue.name, "cores_per_slot", queue.cores_per_slot,
                             f"over the MaxCPUsPerNode of partition {name!r}", f"at most {max_cpus}",
                             "max_cpus_per_node"))
    return found + _nodes(queue, [n for n in nodes if name in n.partitions])


def _memory(queue: QueueConfig, part: Mapping[str, str]) -> list[Finding]:
    """--mem is per node and the bridge always sets it, so the partition's DefMemPer* never apply to its jobs."""
    found = []
    per_node = slurm_limit(part.get("MaxMemPerNode", "UNLIMITED"))
    if per_node is not None and queue.memory_limit > per_node:
        found.append(Finding(queue.name, "memory_limit", queue.memory_limit,
                             f"over the MaxMemPerNode of partition {queue.partition!r}", f"at most {per_node} MB",
                             "max_mem_per_node"))
    per_cpu = slurm_limit(part.get("MaxMemPerCPU", "UNLIMITED"))
    if per_cpu is not None and queue.memory_limit > per_cpu * queue.cores_per_slot:
        # slurm.conf(5) MaxMemPerCPU: Slurm raises the job's CPUs per task to fit, or refuses it
        found.append(Finding(queue.name, "memory_limit", queue.memory_limit,
                             f"over the MaxMemPerCPU of partition {queue.partition!r} ({per_cpu} MB) times "
                             f"cores_per_slot ({queue.cores_per_slot}): Slurm gives each split more CPUs or refuses it",
                             f"at most {per_cpu * queue.cores_per_slot} MB", "max_mem_per_cpu"))
    return found


def _nodes(queue: QueueConfig, nodes: Sequence[cmds.NodeInfo]) -> list[Finding]:
    if not nodes:
        return [Finding(queue.name, "partition", queue.partition, "the partition has no nodes", "", "nodes")]
    found = []
    memory = max(n.memory_mb for n in nodes)
    if queue.memory_limit > memory:
        found.append(Finding(queue.name, "memory_limit", queue.memory_limit,
                             f"more than any node of {queue.partition!r} has", f"at most {memory} MB", "node_memory"))
    cpus = max(n.cpus for n in nodes)
    if queue.cores_per_slot > cpus:
        found.append(Finding(queue.name, "cores_per_slot", queue.cores_per_slot,
                             f"more than any node of {queue.partition!r} has", f"at most {cpus} CPUs", "node_cpus"))
    return found


def access_findings(queue: QueueConfig, part: Mapping[str, str] | None, account: str | None, qos: str | None,
                    whose: str = "") -> list[Finding]:
    """The account and QOS the queue's jobs run under against the partition's Allow/Deny lists.

    `account`/`qos` are the queue's own or, when it names none, the ones Slurm would pick
    (`whose` says so); None when unknown, which leaves that list unchecked.
    """
    if part is None:
        return []
    found = []
    for key, value, allow, deny in (("account", account, "AllowAccounts", "DenyAccounts"),
                                    ("qos", qos, "AllowQos", "DenyQos")):
        if value is None:
            continue
        shown = value if getattr(queue, key) else f"{value} ({whose})"
        allowed = names(part.get(allow, "ALL"))
        if allowed is not None and value not in allowed:
            found.append(Finding(queue.name, key, shown, f"not in the {allow} of partition {queue.partition!r}",
                                 ", ".join(sorted(allowed)), allow.lower()))
        denied = names(part.get(deny, ""))
        if denied and value in denied:
            found.append(Finding(queue.name, key, shown, f"in the {deny} of partition {queue.partition!r}",
                                 f"none of {', '.join(sorted(denied))}", deny.lower()))
    return found


def names(text: str) -> frozenset[str] | None:
    """A comma list of scontrol (`a,b`); None for ALL, an empty set for none."""
    text = text.strip()
    if text.upper() == "ALL":
        return None
    return frozenset(n for n in text.split(",") if n and n != "(null)")


def slurm_limit(text: str) -> int | None:
    """A scontrol memory or count limit ("4000", "4000M", "4G"); None for no limit."""
    text = text.strip().upper()
    if text in UNLIMITED:
        return None
    match = re.fullmatch(r"(\d+)([KMGT]?)", text)
    if not match:
        raise cmds.SlurmParseError(f"not a Slurm limit: {text!r}")
    scale = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[match.group(2)]
    return int(int(match.group(1)) * scale)
