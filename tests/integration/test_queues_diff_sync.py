"""`queues diff` and `queues sync [--dry-run|--force]` as an admin runs them, against the live cluster's partitions.

In-process (bridge.cli.main): the commands read `scontrol show partition` and
`sinfo` of the real cluster; nothing is submitted.
"""

from __future__ import annotations

import json

from bridge_env import QUEUES, block

from bridge.cli import main
from bridge.devcluster.sandbox import queue_toml, write_config


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_diff_then_a_refused_sync_then_a_forced_one(tmp_path, slurm_cluster, capsys):
    config = str(write_config(tmp_path, slurm_cluster.spec.slurm_conf, QUEUES))
    assert run(capsys, "queues", "sync", "--config", config)[0] == 0
    declaration = tmp_path / "exp.json"
    declaration.write_text(json.dumps({"name": "exp", "author": "alice", "blocks": {"a": block("square")}}))
    assert run(capsys, "experiments", "add", str(declaration), "--schedule", "--config", config)[0] == 0

    (tmp_path / "queues.toml").write_text(queue_toml("default", "nosuch", memory_limit=100) + queue_toml(
        "extra", "debug"))
    code, out, _ = run(capsys, "queues", "diff", "--config", config)
    assert code == 1
    queues_file = tmp_path / "queues.toml"
    assert f"{queues_file}: default: partition: file 'nosuch', database 'cpu' (sync writes the file's)" in out
    assert f"{queues_file}: default: partition: 'nosuch' (file) is not a partition of the cluster " \
           "(it has: cpu, debug, long)" in out
    assert f"{queues_file}: long: queue: in the database, not in the file (sync removes it)" in out

    code, out, _ = run(capsys, "queues", "sync", "--dry-run", "--config", config)
    assert code == 0 and "[refused without --force]" in out and "nothing is written" in out
    code, _, err = run(capsys, "queues", "sync", "--config", config)
    assert code == 1 and "sync refused, nothing changed" in err and "experiment 1 (alice/exp) block 'a'" in err
    assert run(capsys, "queues", "diff", "--json", "--config", config)[0] == 1  # still differs: nothing written

    code, out, _ = run(capsys, "queues", "sync", "--force", "--config", config)
    assert code == 0 and "[forced]" in out and "experiment 1 (alice/exp) block 'a'" in out
    code, out, _ = run(capsys, "queues", "diff", "--json", "--config", config)
    differences = json.loads(out)["differences"]
    assert code == 1 and [d["key"] for d in differences] == ["partition"]  # only the cluster's objection left
