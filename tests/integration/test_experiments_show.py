"""`experiments show`, `wait` and `status` after a real failure: the loop runs a failing block on the cluster.

The failed block's job rows are gone when the experiment ends (BEAT deletes
them), so what `show` says of its splits comes from the accounting snapshots,
the Result rows and the element logs in the spool: the path a user takes.
"""

from __future__ import annotations

import json

from bridge_env import block, make_env
from poller_env import finished, run_loop, schedule

from bridge.cli import main

MESSAGE = "planted failure for experiments show"


def test_show_names_the_failed_block_split_element_node_and_stderr_and_wait_exits_1(
        tmp_path, slurm_cluster, slurm, capsys):
    env = make_env(tmp_path, slurm_cluster, slurm)
    experiment_id = schedule(env, {"name": "why", "author": "erin", "blocks": {
        "src": block("scale", slots=2, size=4, parameters={"factor": 3}),
        "bad": block("fail_always", slots=1, size=4, inputs={"in": {"block": "src", "output": "out"}},
                     parameters={"message": MESSAGE}),
    }})
    run_loop(env, finished(experiment_id), timeout=90)
    config = ["--config", str(tmp_path / "bridge.toml")]

    assert main(["experiments", "show", str(experiment_id), "--json", *config]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["status"] == "F" and view["why"]["block"] == "bad" and view["why"]["split"] == 0
    assert MESSAGE in view["why"]["error"]
    blocks = {b["name"]: b for b in view["blocks"]}
    assert blocks["src"]["status"] == "C" and blocks["src"]["counts"] == {"C": 2}
    (split,) = blocks["bad"]["splits"]
    assert split["status"] == "F" and split["source"] == "accounting snapshot" and split["slurm_state"] == "FAILED"
    assert split["element_id"] == view["why"]["element_id"] and split["node"] in ("n1", "n2")
    assert split["logs"]["state"] == "present" and split["logs"]["stderr"].endswith(f"slurm-{split['element_id']}.err")
    assert "fail_always: about to fail" in split["stderr_tail"], split["stderr_tail"]

    assert main(["experiments", "show", str(experiment_id), *config]) == 0
    text = capsys.readouterr().out
    assert f"why: block 'bad' split 0 (element {split['element_id']} on {split['node']}) failed:" in text, text
    assert "  | fail_always: about to fail" in text

    assert main(["experiments", "wait", str(experiment_id), "--timeout", "5", *config]) == 1
    assert f"experiment {experiment_id}: F (failed)" in capsys.readouterr().out

    assert main(["status", "--json", *config]) == 0  # the loop's heartbeat, seconds old
    status = json.loads(capsys.readouterr().out)
    assert status["running"] and status["daemon"]["cycles"] >= 2 and status["slurm"]["answered_at"] is not None
