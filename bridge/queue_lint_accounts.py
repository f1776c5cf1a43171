"""The queue mapping against slurmdbd: accounts and QOS exist, and the bridge's user may use them.

Pure rules on bridge.slurm_checks.AccountingFacts (three `sacctmgr show`). An
unreadable slurmdbd is a finding ("could not check"), never a crash: slurmctld
may well run without it for a while.
"""

from __future__ import annotations

from bridge.queue_lint import Finding
from bridge.queues_config import QueueConfig
from bridge.slurm_checks import AccountingFacts, Association


def account_findings(queue: QueueConfig, facts: AccountingFacts | None, error: str | None = None) -> list[Finding]:
    """The queue's account and QOS exist, the user has an association with the account, the QOS is allowed in it."""
    if facts is None:
        return [Finding(queue.name, "account", queue.account, f"could not check the account, QOS and association: "
                        f"{error or 'slurmdbd did not answer'}", "", "could_not_check")]
    found = []
    if queue.account and queue.account not in facts.accounts:
        found.append(Finding(queue.name, "account", queue.account, "no such account in slurmdbd",
                             ", ".join(sorted(facts.accounts)) or "none", "account"))
    if queue.qos and queue.qos not in facts.qos:
        found.append(Finding(queue.name, "qos", queue.qos, "no such QOS in slurmdbd",
                             ", ".join(sorted(facts.qos)) or "none", "qos"))
    if found:
        return found  # an association with what does not exist says nothing more
    account = effective_account(queue, facts)
    assoc = association(queue, facts)
    if assoc is None:
        usable = sorted({a.account for a in facts.associations if a.partition in ("", queue.partition)})
        what = (f"user {facts.user} has no association with account {account!r}" if account
                else f"the queue names no account and user {facts.user} has no default account")
        where = f" on cluster {facts.cluster!r} for partition {queue.partition!r}"
        return [Finding(queue.name, "account", queue.account, what + where,
                        ", ".join(usable) or f"no account: user {facts.user} has no association", "association")]
    if queue.qos and queue.qos not in assoc.qos:
        found.append(Finding(queue.name, "qos", queue.qos, f"not allowed in user {facts.user}'s association with "
                             f"account {assoc.account!r}", ", ".join(assoc.qos) or "none", "qos_allowed"))
    return found


def effective_account(queue: QueueConfig, facts: AccountingFacts | None) -> str | None:
    """The account the queue's jobs are charged to: its own, else the user's default (None if unknown)."""
    return queue.account or (facts.default_account if facts else None)


def association(queue: QueueConfig, facts: AccountingFacts) -> Association | None:
    """The user's association the queue's jobs run under: one for its partition first, else one for all."""
    account = effective_account(queue, facts)
    matching = [a for a in facts.associations if a.account == account and a.partition in ("", queue.partition)]
    return max(matching, key=lambda a: a.partition == queue.partition, default=None)


def effective_qos(queue: QueueConfig, facts: AccountingFacts | None) -> str | None:
    """The QOS the queue's jobs run under: its own, else the association's default, its only QOS, or "normal".

    Slurm's choice for a job without --qos (slurmctld job_mgr.c, 22.05); None when no association is known.
    """
    if queue.qos:
        return queue.qos
    assoc = association(queue, facts) if facts else None
    if assoc is None:
        return None
    if assoc.default_qos:
        return assoc.default_qos
    return assoc.qos[0] if len(assoc.qos) == 1 else "normal"
