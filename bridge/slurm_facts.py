"""What the Slurm client reads of the cluster itself: partitions, nodes, configuration, version, and the checks
of the queue mapping (`queues check`: the user, slurmdbd's associations, `sbatch --test-only`, `bash -n`).

A mixin of bridge.slurm_client.SlurmClient, apart so that each module keeps one job: the methods use the
client's runner seam (`_run`, `_checked`) and its `[slurm.timeouts]` info bound.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bridge import slurm as cmds
from bridge import slurm_checks as checks
from bridge.errors import CommandError


class ClusterFacts:
    """Cluster facts and mapping checks, for a class with `_run`, `_checked`, `timeouts` and `_max_array_size`."""

    # --- cluster facts ------------------------------------------------------------------

    def partitions(self) -> list[dict[str, str]]:
        """`scontrol show partition`, one dict per partition."""
        result = self._run(cmds.scontrol_show_partition_argv(), self.timeouts.info).check()
        return cmds.parse_scontrol_show_partition(result.stdout)

    def nodes(self) -> list[cmds.NodeInfo]:
        """`sinfo -N`, one NodeInfo per node."""
        return cmds.parse_sinfo_nodes(self._run(cmds.sinfo_nodes_argv(), self.timeouts.info).check().stdout)

    def config(self) -> Mapping[str, str]:
        """`scontrol show config` as a dict; empty when it cannot be read."""
        result = self._run(cmds.scontrol_show_config_argv(), self.timeouts.info)
        return cmds.parse_scontrol_show_config(result.stdout) if result.ok else {}

    def max_array_size(self) -> int:
        """MaxArraySize (read once; Slurm's default if unreadable)."""
        if self._max_array_size is None:
            self._max_array_size = cmds.max_array_size(dict(self.config()))
        return self._max_array_size

    def version(self) -> str:
        """Slurm's version as `sbatch --version` prints it ("22.05.8"); CommandError if unknown."""
        result = self._run(cmds.sbatch_version_argv(), self.timeouts.info).check()
        match = re.search(r"(\d+\.\d+(?:\.\d+)?)", result.stdout)
        if not match:
            raise CommandError(result.argv, result.returncode, result.stdout, result.stderr,
                               f"sbatch --version printed no version: {result.stdout.strip()!r}")
        return match.group(1)

    # --- checks of the queue mapping (`queues check`, bridge.slurm_checks) -----------------

    def user_name(self) -> str:
        """The user Slurm commands run as (`id -un` on the runner's host): whose associations count."""
        return self._run(checks.user_name_argv(), self.timeouts.info).check().stdout.strip()

    def accounting_facts(self, user: str, cluster: str) -> checks.AccountingFacts:
        """Accounts, QOS, the user's default account and associations: three `sacctmgr show`.

        CommandError (naming the command) when slurmdbd cannot be read.
        """
        texts = {what: self._checked(argv, self.timeouts.info).stdout
                 for what, argv in checks.accounting_argvs(user, cluster).items()}
        return checks.accounting_facts(user, cluster, texts)

    def test_only(self, script: str) -> str | None:
        """`sbatch --test-only` of the script on stdin: None when Slurm would take it, else its refusal."""
        result = self._run(checks.sbatch_test_only_argv(), self.timeouts.info, stdin=script)
        return checks.refusal_of_test_only(result.returncode, result.stdout, result.stderr)

    def shell_syntax(self, script: str) -> str | None:
        """`bash -n` of the script on stdin, on the runner's host (where sbatch runs): None, or bash's error."""
        result = self._run(checks.bash_syntax_argv(), self.timeouts.info, stdin=script)
        return checks.bash_syntax_error(result.returncode, result.stderr)
