"""On the real cluster, a level hands over before its elements end (bridge.handover).

`beat-bridge run` polls Slurm only every 60 s here, so the run is driven by
wake-ups (bridge.wake, poller.early). The upstream block's elements linger
after their result until the daemon, having taken their successful results
as their ends while Slurm still showed them running, has submitted the
dependent block; then it releases them. The assertions are on what the
elements said (released, not timed out) and on the order of the spool files
(the dependent's manifest, written just before its sbatch, before the last
release), never on durations.
"""

from __future__ import annotations

import json
import signal

from bridge_env import block, make_env
from poller_env import FINAL, start_run, status, wait_for
from test_wake_live import SLOW_POLL, schedule


def _arrays(env) -> dict[str, list]:
    """block name -> the spool directories of its arrays."""
    found: dict[str, list] = {}
    for manifest in env.config.spool_dir.glob("*/manifest.jsonl"):
        header = json.loads(manifest.read_text().splitlines()[0])
        found.setdefault(header["configuration"]["block"], []).append(manifest.parent)
    return found


def test_upstream_elements_are_released_after_the_dependent_is_submitted(tmp_path, slurm_cluster, slurm, db_url):
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=db_url, extra=SLOW_POLL)
    with open(tmp_path / "run.log", "ab") as log:
        run = start_run(tmp_path, log)
        try:
            experiment = schedule(env, {"name": "hand-over", "author": "ann", "blocks": {
                "a": block("scale", slots=2, size=4, parameters={"factor": 3}),
                "b": block("square", slots=1, inputs={"in": {"block": "a", "output": "out"}})}})
            wait_for("the experiment final", lambda: status(env, experiment) in FINAL, timeout=55, every=0.2)
            # b's elements end without lingering; a's said their word before ending
            wait_for("every element's last line", lambda: all(
                out.read_text().strip() for out in env.config.spool_dir.glob("*/slurm-*.out")), timeout=30)
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(timeout=20)
    text = (tmp_path / "run.log").read_text()
    assert code == 0 and status(env, experiment) == "D", text[-3000:]
    arrays = _arrays(env)
    (upstream,), (dependent,) = arrays["a"], arrays["b"]
    assert json.loads((upstream / "manifest.jsonl").read_text().splitlines()[0])["linger"] > 0
    outs = sorted(upstream.glob("slurm-*.out"))
    assert len(outs) == 2
    for out in outs:
        assert "released after" in out.read_text().splitlines()[-1], (out, out.read_text(), text[-3000:])
    submitted = (dependent / "manifest.jsonl").stat().st_mtime_ns
    releases = sorted(upstream.glob("split-*.release"))
    # each element is released in the cycle its split ended; the one whose end made b runnable (the last)
    # only after b's submission
    assert len(releases) == 2 and max(r.stat().st_mtime_ns for r in releases) >= submitted
    for out in dependent.glob("slurm-*.out"):
        assert "released" not in out.read_text()  # a leaf: nothing waits on it
