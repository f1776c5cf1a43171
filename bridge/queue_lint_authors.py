"""The accounts bridge.toml's [accounts] names, checked as each queue's arrays would run under them (pure).

An author's account replaces the queue's own (bridge.accounts_config), so for
every queue each named account must exist, the bridge's user must have an
association with it, the partition's AllowAccounts/DenyAccounts must let it in
and the queue's QOS must be allowed in that association: the same rules as a
queue's own account (bridge.queue_lint_accounts, bridge.queue_lint), reported
with the bridge.toml keys that name the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bridge.accounts_config import AccountsConfig
from bridge.queue_lint import Finding, access_findings
from bridge.queue_lint_accounts import account_findings, effective_qos
from bridge.queues_config import QueueConfig
from bridge.slurm_checks import AccountingFacts


def author_account_findings(queue: QueueConfig, accounts: AccountsConfig, facts: AccountingFacts | None,
                            part: Mapping[str, str] | None) -> list[Finding]:
    """Every problem of an [accounts] account for this queue; none when slurmdbd could not be read
    (the queue's own "could not check" finding says so); a partition's QOS lists are the queue's own
    findings, whatever the account."""
    if facts is None:
        return []
    found: list[Finding] = []
    for account, keys in accounts.named().items():
        keys = [k for k in keys if k != "accounts.default" or not queue.account]  # the queue's own comes first
        if not keys:
            continue
        as_run = replace(queue, account=account)
        what = f"account {account!r} ({', '.join(keys)} in bridge.toml)"
        access = access_findings(as_run, part, account, effective_qos(as_run, facts))
        problems = account_findings(as_run, facts) + [f for f in access if f.key == "account"]  # the QOS's: the queue's
        found += [replace(f, key="", value=None, problem=f"{what}: {f.problem}" if f.key == "account"
                          else f"{f.key} {f.value!r} with {what}: {f.problem}") for f in problems]
    return found
