"""`beat-bridge queues check`: read the cluster once, apply every rule to every queue, run each sample script.

The only part of the lint that talks to Slurm (through the Slurm client): one
`scontrol show partition`, one `sinfo -N`, `scontrol show config` for the
cluster's name, `id -un` and three `sacctmgr show`, then per queue `bash -n`
and `sbatch --test-only` of the script its template renders for a sample
split (the same sample the loader renders, bridge.queues_config.sample_spec).
The rules themselves are pure (bridge.queue_lint, bridge.queue_lint_accounts).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.accounts_config import AccountsConfig
from bridge.errors import BridgeError, CommandError, ConfigError
from bridge.queue_lint import Finding, access_findings, load_finding, partition_findings
from bridge.queue_lint_accounts import account_findings, effective_account, effective_qos
from bridge.queue_lint_authors import author_account_findings
from bridge.queue_lint_failures import failure_findings
from bridge.queues_config import QueueConfig, sample_spec
from bridge.render import DEFAULT_TEMPLATE, render_array_script
from bridge.slurm_checks import AccountingFacts
from bridge.slurm_client import SlurmClient

log = logging.getLogger(__name__)


def lint_mapping(queues: Mapping[str, QueueConfig], load_errors: Mapping[str, ConfigError], client: SlurmClient,
                 templates_dirs: Sequence[Path] = (), accounts: AccountsConfig | None = None) -> list[Finding]:
    """Every finding for the mapping, grouped by queue; CommandError only when scontrol or sinfo cannot be read.

    `accounts` (bridge.toml's [accounts]) adds each author's and the default account, checked per queue.
    """
    found = [load_finding(name, error) for name, error in load_errors.items()]
    partitions = {p["PartitionName"]: p for p in client.partitions()}
    nodes = client.nodes()
    facts, error = read_accounting(client)
    for queue in queues.values():
        found += partition_findings(queue, partitions, nodes)
        found += account_findings(queue, facts, error)
        whose = f"chosen by Slurm for user {facts.user}" if facts else ""
        found += access_findings(queue, partitions.get(queue.partition), effective_account(queue, facts),
                                 effective_qos(queue, facts), whose)
        if accounts is not None:
            found += author_account_findings(queue, accounts, facts, partitions.get(queue.partition))
        found += script_findings(queue, client, templates_dirs)
        found += failure_findings(queue, queues)
    order = {name: i for i, name in enumerate([*queues, *load_errors])}
    return sorted(found, key=lambda f: order.get(f.queue, len(order)))


def read_accounting(client: SlurmClient) -> tuple[AccountingFacts | None, str | None]:
    """The bridge user's accounting facts, or None and why they could not be read."""
    try:
        cluster = client.config().get("ClusterName", "")
        if not cluster:
            return None, "scontrol show config names no ClusterName"
        return client.accounting_facts(client.user_name(), cluster), None
    except BridgeError as e:  # slurmdbd down, sacctmgr missing, an answer it cannot read
        log.info("queues check: cannot read accounts and associations: %s", e)
        return None, one_line(e)


def one_line(error: BridgeError) -> str:
    """A failed command as `sacctmgr show account: <its first error line>`; other errors as they are."""
    if not isinstance(error, CommandError):
        return str(error)
    lines = [line.strip() for line in (error.stderr or error.stdout).splitlines() if line.strip()]
    what = " ".join(a for a in error.argv[:6] if not a.startswith("-"))
    return f"{what}: {lines[0] if lines else error}"


def script_findings(queue: QueueConfig, client: SlurmClient, templates_dirs: Sequence[Path] = ()) -> list[Finding]:
    """The queue's script for a sample split: bash must parse it and `sbatch --test-only` must accept it."""
    name = queue.template.name if queue.template else None
    source = f"the script rendered from {name or 'the shipped ' + DEFAULT_TEMPLATE}"
    try:
        script = render_array_script(sample_spec(queue), template=queue.template, search_path=templates_dirs)
    except BridgeError as e:  # rendered at load already: only a template edited since fails here
        return [Finding(queue.name, "template", name, f"{source} does not render: {e}", "", "render")]
    found = []
    for rule, check, what, allowed in (("bash_syntax", client.shell_syntax, "bash -n", "a script bash can parse"),
                                       ("sbatch_test_only", client.test_only, "sbatch --test-only", "")):
        try:
            error = check(script)
        except CommandError as e:
            found.append(Finding(queue.name, "template", name, f"could not run {what} on {source}: {one_line(e)}", "",
                                 "could_not_check"))
            continue
        if error is not None:
            found.append(Finding(queue.name, "template", name, f"{what} refuses {source}: {error}", allowed, rule))
    return found
