"""[accounts]: which account an author's arrays are charged to, and `queues check` of every account it names.

The rules run on recorded `sacctmgr show` and `scontrol show partition` output
(tests/data/lint); the live check of a planted unknown author account is
tests/integration/test_backpressure.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bridge import slurm as cmds
from bridge import slurm_checks as checks
from bridge.accounts_config import AccountsConfig
from bridge.queue_lint_authors import author_account_findings
from bridge.queues_config import QueueConfig

LINT = Path(__file__).parent / "data" / "lint"
QUEUE = QueueConfig("default", "cpu", memory_limit=1000, time_limit=30, cores_per_slot=1, max_slots_per_user=4)
MAPPED = AccountsConfig(default="beat", authors={"alice": "lab1", "bob": "beat", "carol": "nosuch"})


def _facts() -> checks.AccountingFacts:
    texts = {"accounts": (LINT / "sacctmgr_accounts.txt").read_text() + "lab1\n",
             "qos": (LINT / "sacctmgr_qos.txt").read_text(), "user": (LINT / "sacctmgr_user_withassoc.txt").read_text()}
    return checks.accounting_facts("root", "beatlocal", texts)


def test_the_authors_account_comes_first_then_the_queues_then_the_default() -> None:
    assert MAPPED.account_for("alice", "gpu-project") == "lab1"
    assert MAPPED.account_for("dave", "gpu-project") == "gpu-project"
    assert MAPPED.account_for("dave", None) == "beat"
    assert AccountsConfig().account_for("alice", None) is None  # Slurm's default account of the service user


def test_named_accounts_list_the_keys_that_name_them() -> None:
    odd = AccountsConfig(authors={"o'neil x": "lab1"})
    assert MAPPED.named() == {"lab1": ["accounts.authors.alice"], "beat": ["accounts.authors.bob", "accounts.default"],
                              "nosuch": ["accounts.authors.carol"]}
    assert odd.named() == {"lab1": ['accounts.authors."o\'neil x"']}


def test_each_named_account_is_checked_as_the_queues_arrays_would_run_under_it() -> None:
    found = author_account_findings(QUEUE, MAPPED, _facts(), None)
    lines = [f.line() for f in found]
    assert [f.rule for f in found] == ["association", "account"], lines
    assert lines[0] == ("queues.default: account 'lab1' (accounts.authors.alice in bridge.toml): user root has "
                        "no association with account 'lab1' on cluster 'beatlocal' for partition 'cpu'; "
                        "allowed: beat, root")
    assert lines[1].startswith("queues.default: account 'nosuch' (accounts.authors.carol in bridge.toml): no such "
                               "account in slurmdbd; allowed: ")


def test_the_default_account_is_not_checked_for_a_queue_that_names_its_own() -> None:
    only_default = AccountsConfig(default="nosuch")
    assert [f.rule for f in author_account_findings(QUEUE, only_default, _facts(), None)] == ["account"]
    assert author_account_findings(replace(QUEUE, account="beat"), only_default, _facts(), None) == []


def test_a_partition_that_denies_an_authors_account_is_named() -> None:
    parts = {p["PartitionName"]: p for p in cmds.parse_scontrol_show_partition(
        (LINT / "scontrol_show_partition_restricted.txt").read_text())}
    queue = replace(QUEUE, partition="old")  # DenyAccounts=root
    [finding] = author_account_findings(queue, AccountsConfig(authors={"bob": "root"}), _facts(), parts["old"])
    assert finding.rule == "denyaccounts"
    assert finding.line() == ("queues.default: account 'root' (accounts.authors.bob in bridge.toml): in the "
                              "DenyAccounts of partition 'old'; allowed: none of root")
    assert author_account_findings(queue, AccountsConfig(authors={"bob": "beat"}), _facts(), parts["old"]) == []


def test_no_findings_of_its_own_when_slurmdbd_cannot_be_read() -> None:
    assert author_account_findings(QUEUE, MAPPED, None, None) == []
