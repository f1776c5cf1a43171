"""`beat-bridge queues check` on the live cluster: each planted bad mapping is named, the shipped one is clean.

Nothing on the cluster is changed: `sbatch --test-only` submits nothing, and an
unreachable slurmdbd is a copy of slurm.conf whose accounting port leads nowhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bridge.devcluster.sandbox import queue_toml

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TEMPLATE = REPO / "templates" / "array.sbatch.j2"

PLANTED = (
    queue_toml("ok", memory_limit=100, time_limit=5)
    + queue_toml("slow", "debug", memory_limit=100, time_limit=30)  # debug: MaxTime 5 min
    + queue_toml("big", memory_limit=9000, time_limit=5)  # nodes: 4000 MB
    + queue_toml("ghost", time_limit=5, extra='account = "no-such-account"')
    + queue_toml("vip", time_limit=5, extra='qos = "no-such-qos"')  # the dev cluster has one QOS, allowed
    + queue_toml("alias", time_limit=5, extra='extra_directives = ["--nice=1", "--mem-per-cpu=100"]')
    + queue_toml("option", time_limit=5, extra='template = "bad_option.sbatch.j2"')
    + queue_toml("shell", time_limit=5, extra='template = "bad_shell.sbatch.j2"')
)
EXPECTED = {  # (queue, rule, key) each planted problem must be named by
    ("slow", "max_time", "time_limit"), ("big", "node_memory", "memory_limit"), ("ghost", "account", "account"),
    ("vip", "qos", "qos"), ("alias", "load", "extra_directives"), ("option", "sbatch_test_only", "template"),
    ("shell", "bash_syntax", "template"),
}


def _templates(root: Path) -> Path:
    """A templates dir: the shipped template with an option sbatch does not know, and with a shell syntax error."""
    text = SHIPPED_TEMPLATE.read_text()
    templates = root / "templates"
    templates.mkdir()
    marker = "# Rendered by beat-slurm-bridge"
    (templates / "bad_option.sbatch.j2").write_text(text.replace(marker, "#SBATCH --no-such-option=1\n" + marker))
    unclosed = text.replace("set -euo pipefail\n", "set -euo pipefail\nif true; then\n")
    (templates / "bad_shell.sbatch.j2").write_text(unclosed)
    return templates


def _config(root: Path, queues: str | Path, slurm_conf: Path) -> Path:
    if isinstance(queues, str):
        (root / "queues.toml").write_text(queues)
    path = root / "bridge.toml"
    path.write_text(f'queues = "{queues if isinstance(queues, Path) else "queues.toml"}"\n'
                    f'templates_dir = "{_templates(root)}"\ncache_root = "cache"\nspool_dir = "spool"\n'
                    f'[database]\nurl = "sqlite:///{root}/b.sqlite"\n[slurm]\nconf = "{slurm_conf}"\n')
    return path


def _check(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", "queues", "check", "--config", str(config), *extra],
                          capture_output=True, text=True, timeout=120)


def test_each_planted_problem_is_named_and_the_good_queue_is_not(tmp_path, slurm_cluster):
    result = _check(_config(tmp_path, PLANTED, slurm_cluster.spec.slurm_conf), "--json")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    named = {(f["queue"], f["rule"], f["key"].split("[")[0]) for f in report["findings"]}
    assert EXPECTED <= named, sorted(named)
    assert not [f for f in report["findings"] if f["queue"] == "ok"]
    assert (report["queues"], report["clean"], report["error"]) == (8, False, None)
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["max_time"]["allowed"] == "at most 5 min"
    assert "--no-such-option" in by_rule["sbatch_test_only"]["problem"]
    assert "syntax error" in by_rule["bash_syntax"]["problem"]
    assert "conflicts with --mem" in by_rule["load"]["problem"]


def test_the_shipped_mapping_is_clean(tmp_path, slurm_cluster):
    result = _check(_config(tmp_path, REPO / "config" / "queues.toml", slurm_cluster.spec.slurm_conf))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith("3 queues fit the cluster (partitions, nodes, accounts and QOS; each script "
                                  "passes bash -n and sbatch --test-only)\n")


def test_an_unreachable_slurmdbd_is_named_per_queue_not_a_crash(tmp_path, slurm_cluster):
    conf = tmp_path / "slurm.conf"
    lines = slurm_cluster.spec.slurm_conf.read_text().splitlines()
    conf.write_text("\n".join("AccountingStoragePort=1" if line.startswith("AccountingStoragePort=") else line
                              for line in lines) + "\n")
    result = _check(_config(tmp_path, queue_toml("ok", memory_limit=100, time_limit=5), conf))
    assert result.returncode == 1, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(f"{tmp_path / 'queues.toml'}: queues.ok.account: could not check the account, QOS and "
                           "association: sacctmgr show account format=Account: sacctmgr: error:"), line
