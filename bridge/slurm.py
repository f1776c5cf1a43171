"""Slurm's command lines and the text they print: pure argv builders and parsers.

Nothing here runs a command; a runner (bridge.runner) does. Formats are those of
Slurm 22.05 (Debian 12); see ../shared/slurm-notes.md for what was observed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.errors import BridgeError
from bridge.slurm_errors import (  # noqa: F401  re-exported: callers read stderr's meaning from bridge.slurm
    PERMANENT_PATTERNS,
    TRANSIENT_PATTERNS,
    is_transient,
    permanent_reason,
    submit_limit_reason,
    surely_not_submitted,
)

log = logging.getLogger(__name__)

# With --parsable2 sacct never truncates a field, and "|" separates them.
SACCT_FIELDS: tuple[str, ...] = (
    "JobID", "JobIDRaw", "JobName", "Partition", "State", "ExitCode",
    "NodeList", "Submit", "Start", "End", "Comment",
)
# squeue -O field -> the sacct field name it stands for (free text last)
SQUEUE_FIELDS: tuple[tuple[str, str], ...] = (
    ("JobArrayID", "JobID"), ("JobID", "JobIDRaw"), ("Partition", "Partition"), ("State", "State"),
    ("NodeList", "NodeList"), ("SubmitTime", "Submit"), ("StartTime", "Start"), ("EndTime", "End"),
    ("exit_code", "ExitCode"), ("Name", "JobName"),
)
# squeue's stderr when none of the ids is known any more (every array forgotten: not an error)
NO_SUCH_JOB = "invalid job id specified"
SINFO_NODE_FORMAT = "%N|%P|%c|%m|%T"
DEFAULT_MAX_ARRAY_SIZE = 1001

class SlurmParseError(BridgeError):
    """Slurm printed something the bridge cannot read."""


@dataclass(frozen=True)
class NodeInfo:
    """One node as `sinfo -N` reports it."""

    name: str
    partitions: tuple[str, ...]
    cpus: int
    memory_mb: int
    state: str

    @property
    def usable(self) -> bool:
        """Idle, mixed or allocated, and not drained, down or not responding."""
        return self.state.rstrip("*~#!%$@^-+") in {"idle", "mixed", "allocated", "completing"} and (
            self.state[-1:] not in "*~#!%$@^-"
        )


def sbatch_argv(extra: Sequence[str] = ()) -> list[str]:
    """`sbatch --parsable`, the script given on stdin (so nothing touches the shared file system)."""
    return ["sbatch", "--parsable", *extra]


def parse_sbatch_parsable(stdout: str) -> int:
    """The job id from `sbatch --parsable`: "123" or "123;cluster" (last non-empty line)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    match = re.fullmatch(r"(\d+)(?:;\S+)?", text)
    if not match:
        raise SlurmParseError(f"sbatch --parsable printed no job id: {stdout!r}")
    return int(match.group(1))


def squeue_argv(job_ids: Iterable[int | str]) -> list[str]:
    """One squeue for the arrays, finished elements included (-t all), `|`-separated, never truncated."""
    return ["squeue", "-h", "-t", "all", "-j", ",".join(str(i) for i in job_ids),
            "-O", ",".join(f"{name}:|" for name, _ in SQUEUE_FIELDS)]


def squeue_argvs(job_ids: Sequence[int | str], chunk: int = 2000) -> list[list[str]]:
    """`squeue_argv` for a long id list, split so that no command line grows without bound.

    Chunks are large: squeue with several ids loads every job from slurmctld and
    filters them itself (squeue(1) in 22.05), so each call costs the controller
    about the same; 2000 ids are ~20 kB of argv, far below ARG_MAX.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    ids = list(job_ids)
    return [squeue_argv(ids[i : i + chunk]) for i in range(0, len(ids), chunk)]


def squeue_reasons_argv(job_ids: Iterable[int | str]) -> list[str]:
    """The pending elements of the arrays with Slurm's reason, one line each (`-r`: ranges expanded)."""
    return ["squeue", "-h", "-r", "-t", "PENDING", "-j", ",".join(str(i) for i in job_ids),
            "-O", "JobArrayID:|,Reason:|"]


def parse_squeue_reasons(text: str) -> dict[str, str]:
    """`123_4|Priority|` lines -> {"123_4": "Priority"}; other lines are logged and skipped."""
    reasons: dict[str, str] = {}
    for line in text.splitlines():
        element, sep, rest = line.partition("|")
        reason = rest.split("|")[0].strip()
        if sep and re.fullmatch(r"\d+_\d+", element.strip()) and reason:
            reasons[element.strip()] = reason
        elif line.strip():
            log.warning("squeue reasons: skipping unreadable line %r", line)
    return reasons


def squeue_mine_argv() -> list[str]:
    """Every job of this Slurm user that slurmctld knows (`--me`, finished ones too), with its name."""
    return ["squeue", "-h", "-t", "all", "--me", "-O", ",".join(f"{name}:|" for name, _ in SQUEUE_FIELDS)]


def squeue_by_name_argv(name: str) -> list[str]:
    """The array ids squeue knows under a job name (a submission tag), finished ones included."""
    return ["squeue", "-h", "-t", "all", "--name", name, "-o", "%F"]


def sbatch_version_argv() -> list[str]:
    return ["sbatch", "--version"]


def format_slurm_time(when: datetime) -> str:
    """A datetime as sacct's -S/-E want it (local time of the cluster, seconds)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def sacct_argv(
    start: datetime,
    end: datetime | None = None,
    job_ids: Iterable[int | str] = (),
    names: Iterable[str] = (),
    fields: Sequence[str] = SACCT_FIELDS,
    allocations: bool = True,
) -> list[str]:
    """One `sacct` over a bounded window for the given ids and/or job names.

    -X: allocations only (one row per element; `allocations=False` adds the
    step rows, for the batch step's MaxRSS); --parsable2: "|" separated,
    never truncated; -S/-E always together (sacct's --state semantics need both,
    and without -j the default start is today 00:00).
    """
    argv = ["sacct", *(["-X"] if allocations else []), "--parsable2", "--noheader",
            "--format=" + ",".join(fields)]
    argv += ["-S", format_slurm_time(start)]
    argv += ["-E", format_slurm_time(end) if end is not None else "now"]
    ids = [str(i) for i in job_ids]
    if ids:
        argv += ["-j", ",".join(ids)]
    name_list = list(names)
    if name_list:
        bad = [n for n in name_list if not n or "," in n]
        if bad:
            raise BridgeError(f"sacct --name cannot select job names containing ',' or empty: {bad!r}")
        argv += ["--name", ",".join(name_list)]
    return argv


def sacct_argvs(
    start: datetime,
    end: datetime | None,
    job_ids: Sequence[int | str],
    fields: Sequence[str] = SACCT_FIELDS,
    chunk: int = 500,
    allocations: bool = True,
) -> list[list[str]]:
    """`sacct_argv` for a long id list, split so that no command line grows without bound."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    ids = list(job_ids)
    return [sacct_argv(start, end, ids[i : i + chunk], fields=fields, allocations=allocations)
            for i in range(0, len(ids), chunk)]


def scancel_argv(element_ids: Iterable[str]) -> list[str]:
    """One `scancel` for every element id ("123_4", "123" for a whole array)."""
    ids = [str(i) for i in element_ids]
    bad = [i for i in ids if not re.fullmatch(r"\d+(_\d+)?", i)]
    if not ids or bad:
        raise BridgeError(f"scancel needs job ids like 123 or 123_4, got {ids!r}")
    return ["scancel", *ids]


def scancel_by_name_argv(tag: str) -> list[str]:
    """scancel every job named `tag` (a submission whose array id the bridge never learnt)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", tag):
        raise BridgeError(f"scancel --name needs a submission tag, got {tag!r}")
    return ["scancel", "--name", tag]


def scontrol_show_config_argv() -> list[str]:
    return ["scontrol", "show", "config"]


def scontrol_show_partition_argv() -> list[str]:
    return ["scontrol", "-o", "show", "partition"]


def sinfo_nodes_argv() -> list[str]:
    return ["sinfo", "-N", "-h", "-o", SINFO_NODE_FORMAT]


def parse_scontrol_show_config(text: str) -> dict[str, str]:
    """`Key = Value` lines of `scontrol show config` (first occurrence of a key wins)."""
    config: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and key and " " not in key:
            config.setdefault(key, value.strip())
    return config


def max_array_size(config: dict[str, str]) -> int:
    """MaxArraySize from a parsed config: the highest array index is MaxArraySize - 1."""
    value = config.get("MaxArraySize", "")
    return int(value) if value.isdigit() else DEFAULT_MAX_ARRAY_SIZE


def parse_key_values(line: str) -> dict[str, str]:
    """`A=1 B=x y C=2` -> {"A": "1", "B": "x y", "C": "2"}: a word without "=" continues the value."""
    result: dict[str, str] = {}
    last = None
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9_/:]*", key):
            result[key] = value
            last = key
        elif last is not None:
            result[last] += " " + word
    return result


def parse_scontrol_show_partition(text: str) -> list[dict[str, str]]:
    """One dict per partition from `scontrol -o show partition` (one line each)."""
    partitions = []
    for line in text.splitlines():
        fields = parse_key_values(line)
        if "PartitionName" in fields:
            partitions.append(fields)
        elif line.strip():
            log.warning("scontrol show partition: skipping unreadable line %r", line)
    return partitions


def parse_slurm_duration(text: str) -> int | None:
    """A Slurm time limit in whole minutes (seconds round up); None for UNLIMITED/INFINITE.

    Accepted: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (sbatch(1), --time).
    """
    text = text.strip()
    if text.upper() in {"UNLIMITED", "INFINITE"}:
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise SlurmParseError(f"not a Slurm time limit: {text!r}")
    days, a, b, c = match.groups()
    if days is not None:  # D-H[:M[:S]]
        h, m, s = int(a), int(b or 0), int(c or 0)
        seconds = ((int(days) * 24 + h) * 60 + m) * 60 + s
    elif c is not None:  # H:M:S
        seconds = (int(a) * 60 + int(b)) * 60 + int(c)
    elif b is not None:  # M:S
        seconds = int(a) * 60 + int(b)
    else:  # M
        seconds = int(a) * 60
    return -(-seconds // 60)


def parse_sinfo_nodes(text: str) -> list[NodeInfo]:
    """Nodes from `sinfo -N -h -o "%N|%P|%c|%m|%T"`: one row per node and partition, merged."""
    nodes: dict[str, NodeInfo] = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) != 5 or not parts[0]:
            if line.strip():
                log.warning("sinfo: skipping unreadable line %r", line)
            continue
        name, partition, cpus, memory, state = parts
        try:
            node = NodeInfo(name, (partition.rstrip("*"),), int(cpus), int(memory.rstrip("+")), state)
        except ValueError:
            log.warning("sinfo: skipping line with bad numbers %r", line)
            continue
        if name in nodes:
            old = nodes[name]
            node = NodeInfo(name, old.partitions + node.partitions, old.cpus, old.memory_mb, old.state)
        nodes[name] = node
    return list(nodes.values())
