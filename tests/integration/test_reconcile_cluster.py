"""`beat-bridge reconcile` on the real cluster: a clean run, then each kind of divergence made for real.

A small experiment runs to completion through the bridge: `reconcile` is clean
(exit 0). Then, behind the bridge's back: a held array named with a tag of this
deployment (orphan) and one of another deployment (never reported, never
scancelled); a split recorded under an array id Slurm never had (lost, after
two runs over the grace); an element that really FAILED whose snapshot says
done, and a snapshot of the clean run turned failed while Slurm says COMPLETED
(divergent); a claim never recorded, older than stuck_after (stuck).
`reconcile` reports each (exit 1), `--json` parses, `--apply` scancels the
orphan only and queues the lost split again, which the bridge then submits
exactly once and runs to the end. Everything submitted here is scancelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from bridge_env import block, make_env
from poller_env import REPO, Arrays, finished, run_loop, sacct_elements, schedule, split_history, wait_for
from sqlalchemy import select, update

from bridge.helpers import split_new_jobs
from bridge.models import AccountingSnapshot, Block, JobSplit
from bridge.slurm import parse_sbatch_parsable, sbatch_argv
from bridge.slurm_client import utc_naive_now
from bridge.submission_db import mark_splits_submitting
from bridge.tags import new_tag

NEVER = "99999999"  # above Slurm's MaxJobId (67043328): no array ever had this id
HELD = "#!/bin/bash\n#SBATCH --hold\n#SBATCH --partition=debug\n#SBATCH --time=1\n#SBATCH --mem=10\n" \
       "#SBATCH --output=/dev/null\n#SBATCH --array=0-1\nsleep 60\n"
FAILS = "#!/bin/bash\n#SBATCH --partition=debug\n#SBATCH --time=1\n#SBATCH --mem=10\n#SBATCH --output=/dev/null\n" \
        "#SBATCH --array=0\nexit 3\n"


def sbatch(slurm, script: str, name: str, submitted: list[int]) -> int:
    job_id = parse_sbatch_parsable(slurm.run(sbatch_argv([f"--job-name={name}"]), stdin=script,
                                             timeout=30).check().stdout)
    submitted.append(job_id)
    return job_id


def reconcile(env, *args: str) -> subprocess.CompletedProcess:
    """`beat-bridge reconcile` as a real process of this tree."""
    return subprocess.run([sys.executable, "-m", "bridge.cli", "reconcile", "--config",
                           str(env.root / "bridge.toml"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


def squeue_states(slurm, job_id: int) -> set[str]:
    result = slurm.run(["squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T"], timeout=30)
    return set(result.stdout.split()) if result.ok else set()


def add_split_rows(env, deployment: str) -> tuple[int, int]:
    """Two one-split experiments, split but not submitted: one made lost, one left stuck. Their split ids."""
    lost_id = schedule(env, {"name": "lost", "author": "ann", "blocks": {"a": block("square", slots=1, size=2)}})
    stuck_id = schedule(env, {"name": "stuck", "author": "bob", "blocks": {"a": block("scale", slots=1, size=2)}})
    with env.sessions() as session:
        split_new_jobs(session, str(env.config.cache_root))
        by_experiment = {s.job.block.experiment_id: s for s in session.scalars(select(JobSplit))}
        lost, stuck = by_experiment[lost_id], by_experiment[stuck_id]
        # lost: recorded as pending on Slurm under an array id Slurm never had
        session.execute(update(JobSplit).where(JobSplit.id == lost.id).values(
            submission_tag=new_tag(deployment=deployment), slurm_job_id=NEVER, slurm_element_id=f"{NEVER}_0",
            submit_time=utc_naive_now() - timedelta(minutes=1)))
        session.commit()
        ids = lost.id, stuck.id
    with env.sessions() as session:  # stuck: claimed 20 minutes ago, never recorded
        mark_splits_submitting(session, [ids[1]], new_tag(time.time() - 1200, deployment=deployment))
    return ids


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_reconcile_finds_each_divergence_made_on_the_cluster_and_apply_fixes_the_safe_ones(
        tmp_path, slurm_cluster, slurm, db, request):
    deployment, other = f"t{uuid.uuid4().hex[:8]}", f"o{uuid.uuid4().hex[:8]}"
    db_url = request.getfixturevalue("postgres_url") if db == "postgresql" else None
    env = make_env(tmp_path, slurm_cluster, slurm, db_url=db_url,
                   extra=f'deployment = "{deployment}"\n[reconcile]\nmisses = 2\ngrace = 1.0\n')
    submitted: list[int] = []
    try:
        clean_id = schedule(env, {"name": "clean", "author": "ann", "blocks": {"a": block("square", slots=2)}})
        run_loop(env, finished(clean_id), timeout=90)
        clean = reconcile(env)
        assert (clean.returncode, clean.stdout.startswith("clean: no divergence")) == (0, True), clean

        orphan = sbatch(slurm, HELD, new_tag(deployment=deployment), submitted)
        foreign = sbatch(slurm, HELD, new_tag(deployment=other), submitted)
        failing_tag = new_tag(deployment=deployment)
        failed = sbatch(slurm, FAILS, failing_tag, submitted)
        lost_split, stuck_split = add_split_rows(env, deployment)
        with env.sessions() as session:
            done = session.scalars(select(AccountingSnapshot).order_by(AccountingSnapshot.id)).first()
            done.split_status = "F"  # failed in BEAT; Slurm says COMPLETED
            session.add(AccountingSnapshot(  # done in BEAT; the element really FAILED
                split_id=10**6, split_status="C", experiment_id=clean_id, experiment_name="clean", author="ann",
                block_name="a", submission_tag=failing_tag, array_job_id=failed, element_id=f"{failed}_0"))
            session.commit()
            flipped = (done.split_id, done.element_id)
        wait_for("the failing element in sacct", lambda: [r for r in sacct_elements(
            slurm, utc_naive_now() - timedelta(minutes=5), [failed]) if r.state == "FAILED"], timeout=30)

        first = reconcile(env)
        assert first.returncode == 1, first
        assert first.stdout.splitlines()[0].startswith("4 divergences: 1 orphan, 2 divergent, 1 stuck"), first.stdout
        assert other not in first.stdout and str(foreign) not in first.stdout.split()
        time.sleep(1.1)  # the grace: the lost split needs two runs at least 1 s apart

        second = reconcile(env, "--json")
        report = json.loads(second.stdout)
        assert second.returncode == 1 and report["clean"] is False and report["error"] is None
        found = sorted((d["kind"], d["split_id"], d["slurm_id"], d["slurm_state"]) for d in report["divergences"])
        assert found == sorted([
            ("orphan", None, str(orphan), "PENDING"), ("lost", lost_split, f"{NEVER}_0", None),
            ("divergent", flipped[0], flipped[1], "COMPLETED"), ("divergent", 10**6, f"{failed}_0", "FAILED"),
            ("stuck", stuck_split, None, None)]), report
        assert all(d["tag"] is None or d["tag"].startswith(f"bb-{deployment}-") for d in report["divergences"])

        applied = reconcile(env, "--apply")
        assert applied.returncode == 1, applied
        assert f"applied: scancel {orphan} (" in applied.stdout
        assert f"applied: split {lost_split} (array {NEVER}): queued again" in applied.stdout
        wait_for("the orphan cancelled", lambda: squeue_states(slurm, orphan) <= {"CANCELLED"} and [
            r for r in sacct_elements(slurm, utc_naive_now() - timedelta(minutes=5), [orphan], ranges=True, bare=True)
            if r.state == "CANCELLED"], timeout=30)
        assert squeue_states(slurm, foreign) == {"PENDING"}  # another deployment's: untouched

        arrays = Arrays()
        with env.sessions() as session:
            lost_experiment = session.get(JobSplit, lost_split).job.block.experiment_id
        run_loop(env, finished(lost_experiment), timeout=90, on_cycle=arrays)
        with env.sessions() as session:
            block_id = session.scalar(select(Block.id).where(Block.experiment_id == lost_experiment))
            assert len(arrays.by_block[block_id]) == 1  # submitted exactly once, under a new tag
            assert session.get(Block, block_id).status.value == "C"
            steps = [(frm, to, source) for frm, to, source in split_history(session)[lost_split]]
            assert steps[-3:] == [("N", "N", "reconcile"), ("N", "P", "on_split_started"), ("P", "C", "on_split_done")]
    finally:
        if submitted:
            slurm.run(["scancel", *map(str, submitted)], timeout=30)
