"""Command lines and answers for checking the queue mapping: sacctmgr show, sbatch --test-only, bash -n.

Pure, as bridge.slurm: argv lists built here, text parsed here, run by the Slurm
client (bridge.slurm_client). Formats are those of Slurm 22.05 (Debian 12),
recorded under tests/data/lint/.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bridge.errors import BridgeError
from bridge.slurm import SlurmParseError

ACCOUNT_FIELDS = ("Account",)
QOS_FIELDS = ("Name",)
# `show user withassoc`: one row per association of the user, each with the user's default account
USER_FIELDS = ("User", "DefaultAccount", "Cluster", "Account", "Partition", "QOS", "DefaultQOS")
_WORD = re.compile(r"^[A-Za-z0-9_.+-]+$")
# sbatch --test-only's answer when Slurm would take the job (src/sbatch/sbatch.c, 22.05)
_WILL_RUN = re.compile(r"^sbatch: Job \d+ to start at (\S+) using (\d+) processors on nodes (\S+) in partition (\S+)")


@dataclass(frozen=True)
class Association:
    """One association of the bridge's user (sacctmgr show assoc): an account, optionally one partition."""

    account: str
    partition: str  # "" for every partition
    qos: tuple[str, ...]
    default_qos: str


@dataclass(frozen=True)
class AccountingFacts:
    """What slurmdbd says about the bridge's Slurm user: what exists, and what the user may use."""

    user: str
    cluster: str
    accounts: frozenset[str]
    qos: frozenset[str]
    default_account: str | None
    associations: tuple[Association, ...]


def sacctmgr_show_argv(entity: str, fields: Sequence[str], where: Mapping[str, str] | None = None,
                       options: Sequence[str] = ()) -> list[str]:
    """`sacctmgr -n -P show <entity> [options] [where k=v ...] format=...`: no header, "|"-separated, never cut."""
    conditions = [f"{key}={value}" for key, value in (where or {}).items()]
    bad = [value for value in (where or {}).values() if not _WORD.match(value)]
    if bad:
        raise BridgeError(f"sacctmgr show {entity}: cannot select by {bad!r}: expected names of {_WORD.pattern}")
    return ["sacctmgr", "-n", "-P", "show", entity, *options, *(["where", *conditions] if conditions else []),
            "format=" + ",".join(fields)]


def accounting_argvs(user: str, cluster: str) -> dict[str, list[str]]:
    """The three sacctmgr calls behind AccountingFacts, by what they read."""
    return {
        "accounts": sacctmgr_show_argv("account", ACCOUNT_FIELDS),
        "qos": sacctmgr_show_argv("qos", QOS_FIELDS),
        "user": sacctmgr_show_argv("user", USER_FIELDS, {"name": user, "cluster": cluster}, ["withassoc"]),
    }


def parse_sacctmgr(text: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """Rows of `sacctmgr -n -P show ... format=<fields>` as dicts; SlurmParseError on a row of another width."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = line.split("|")
        if len(values) == len(fields) + 1 and values[-1] == "":  # -p (not -P) ends each row with "|"
            values.pop()
        if len(values) != len(fields):
            raise SlurmParseError(f"sacctmgr printed {len(values)} fields where {len(fields)} were asked "
                                  f"({','.join(fields)}): {line!r}")
        rows.append(dict(zip(fields, values)))
    return rows


def accounting_facts(user: str, cluster: str, texts: Mapping[str, str]) -> AccountingFacts:
    """AccountingFacts from the stdout of each of `accounting_argvs` (same keys)."""
    users = [row for row in parse_sacctmgr(texts["user"], USER_FIELDS) if row["User"] == user]
    associations = tuple(
        Association(row["Account"], row["Partition"], tuple(q for q in row["QOS"].split(",") if q), row["DefaultQOS"])
        for row in users if row["Cluster"] == cluster and row["Account"]
    )
    return AccountingFacts(
        user=user, cluster=cluster,
        accounts=frozenset(row["Account"] for row in parse_sacctmgr(texts["accounts"], ACCOUNT_FIELDS)),
        qos=frozenset(row["Name"] for row in parse_sacctmgr(texts["qos"], QOS_FIELDS)),
        default_account=next((row["DefaultAccount"] or None for row in users), None),
        associations=associations,
    )


def sbatch_test_only_argv() -> list[str]:
    """`sbatch --test-only`, the script on stdin: Slurm validates it and says when it would start, submits nothing."""
    return ["sbatch", "--test-only"]


def refusal_of_test_only(returncode: int, stdout: str, stderr: str) -> str | None:
    """None when `sbatch --test-only` says the job would start; else sbatch's error, one line.

    Refusals come as "sbatch: error: ...", "sbatch: fatal: ...", "allocation failure: ..."
    or getopt's "sbatch: unrecognized option ..." with a "Try sbatch --help" line (dropped).
    """
    lines = [line.strip() for line in (stderr + "\n" + stdout).splitlines() if line.strip()]
    if returncode == 0 and any(_WILL_RUN.match(line) for line in lines):
        return None
    useful = [line for line in lines if not line.startswith("Try \"sbatch --help\"")]
    if returncode == 0:
        return f"sbatch --test-only printed no start time: {' '.join(useful) or 'no output'}"
    return "; ".join(useful) or f"sbatch --test-only exited {returncode}"


def bash_syntax_argv() -> list[str]:
    """`bash -n`: read the script from stdin and parse it without running anything."""
    return ["bash", "-n"]


def bash_syntax_error(returncode: int, stderr: str) -> str | None:
    """None when `bash -n` parsed the script; else its messages, one line."""
    if returncode == 0:
        return None
    return "; ".join(line.strip() for line in stderr.splitlines() if line.strip()) or f"bash -n exited {returncode}"


def user_name_argv() -> list[str]:
    """The login name commands run as on the runner's host: the Slurm user of the bridge's jobs."""
    return ["id", "-un"]
