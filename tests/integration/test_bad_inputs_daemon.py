"""A running `beat-bridge run` is unaffected by the hostile-input corpus fed to the CLI beside it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from bridge_env import QUEUES, block

from bridge.cli import main
from bridge.devcluster.sandbox import write_config

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, timeout=120)


def test_the_daemon_runs_on_after_every_bad_declaration_and_id(tmp_path, slurm_cluster, capsys):
    config = str(write_config(tmp_path, slurm_cluster.spec.slurm_conf, QUEUES))
    assert _cli("queues", "sync", "--config", config).returncode == 0
    log = (tmp_path / "run.log").open("w")
    daemon = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", "--config", config],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        refused = 0
        for case in sorted((BAD / "declarations").iterdir()):
            refused += main(["experiments", "add", str(case), "--config", config]) != 0
        for bad_id in ("0", "2147483648", "99999999999999999999", "424242"):
            try:
                refused += main(["experiments", "cancel", bad_id, "--config", config]) != 0
            except SystemExit as e:
                refused += e.code != 0
        assert refused == len(list((BAD / "declarations").iterdir())) + 4
        assert "Traceback" not in capsys.readouterr().err
        assert daemon.poll() is None, "the daemon stopped"

        good = tmp_path / "good.json"
        good.write_text(json.dumps({"name": "after-bad", "author": "erin", "blocks": {"a": block("square", slots=2)}}))
        assert _cli("experiments", "add", str(good), "--schedule", "--config", config).returncode == 0
        deadline = time.monotonic() + 120
        while "D 1/1 blocks done" not in _cli("experiments", "list", "--config", config).stdout:
            assert daemon.poll() is None, "the daemon stopped"
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=60)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert code == 0 and "Traceback" not in output, output[-3000:]
