"""A full spool disk is transient (issue 9, hole 7): nothing fails, the cycle reports it and backs off.

The spool is a real, tiny tmpfs the test mounts (as root) and fills; Slurm is
the replay fake. Once space is freed, the next cycle submits as usual.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fakes import Answer
from replay_env import JOB, block, cycle, declare, make_replay_env, splits, status_of
from required_parts import need


@pytest.fixture
def tiny_spool(tmp_path):
    """make_replay_env over a 64 KiB tmpfs spool, unmounted afterwards."""
    env = make_replay_env(tmp_path)
    spool = Path(env.config.spool_dir)
    spool.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spool)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        need("a tmpfs mount", f"mount -t tmpfs failed (root needed): {mounted.stderr.strip()}")
    try:
        yield env, spool
    finally:
        subprocess.run(["umount", "-l", str(spool)], capture_output=True)


def fill(spool: Path) -> Path:
    filler = spool / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler



def test_a_full_spool_fails_nothing_and_the_next_cycle_after_freeing_space_submits(tiny_spool, caplog):
    env, spool = tiny_spool
    experiment = declare(env, {"a": block(slots=2)})
    filler = fill(spool)
    report = cycle(env)
    assert report.submitted == [] and env.fake.count("sbatch") == 0
    assert report.error is not None and "No space left" in report.error
    assert status_of(env, experiment) != "F"
    assert [(s.status.value, s.submission_tag) for s in splits(env)] == [("N", None), ("N", None)]
    assert any(r.levelname == "ERROR" and "No space left" in r.getMessage() for r in caplog.records)
    filler.unlink()
    env.fake.then("sbatch", Answer(f"{JOB}\n"))
    (sub,) = cycle(env).submitted
    assert sub.job_id == JOB and {s.slurm_job_id for s in splits(env)} == {str(JOB)}
