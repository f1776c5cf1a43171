"""assign_splits_to_workers on the real cluster: one array per job, the queue's limits, exactly once."""

from __future__ import annotations

import dataclasses
import json

import pytest
from bridge_env import block, make_env, queue_toml, wait_sacct
from sqlalchemy import select

from bridge.cache import is_cache_complete
from bridge.declaration import load_experiment
from bridge.errors import CommandTimeout
from bridge.hashing import cache_path
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.models import Block, Experiment, JobSplit, Result
from bridge.runner import CommandResult
from bridge.sbatch_scripts.manifest import read_element
from bridge.slurm import parse_key_values, sacct_argv
from bridge.submit import assign_splits_to_workers, reconcile_claims

THREE_JOBS = {
    "name": "three-jobs", "author": "alice",
    "blocks": {
        "a": block("scale", parameters={"factor": 3}),
        "b": block("square"),
        "c": block("scale", queue="long", parameters={"factor": 5}),
    },
}


def _schedule(env, declaration) -> int:
    with env.sessions() as session:
        experiment = load_experiment(session, declaration)
        schedule_experiment(session, experiment)
        split_new_jobs(session)
        return experiment.id


def _show_job(slurm, job_id: int) -> dict[str, str]:
    text = slurm.run(["scontrol", "-o", "show", "job", str(job_id)], timeout=30).check().stdout
    return parse_key_values(text.splitlines()[0])


def test_three_jobs_of_four_splits_go_out_as_three_arrays_with_the_queue_limits(tmp_path, slurm_cluster, slurm,
                                                                              any_runner):
    """Submitted through the local runner, and through the SSH runner to a real sshd on loopback."""
    _three_jobs_go_out_with_the_queue_limits(make_env(tmp_path, slurm_cluster, any_runner), slurm)


def test_three_jobs_go_out_with_the_queue_limits_through_the_pyslurm_client(tmp_path, slurm_cluster, slurm):
    _three_jobs_go_out_with_the_queue_limits(make_env(tmp_path, slurm_cluster, slurm, client="pyslurm"), slurm)


def _three_jobs_go_out_with_the_queue_limits(env, slurm) -> None:
    experiment_id = _schedule(env, THREE_JOBS)
    with env.sessions() as session:
        submissions = assign_splits_to_workers(session, env.backend)
        assert sorted(len(s.split_ids) for s in submissions) == [4, 4, 4]
        assert sorted(s.queue for s in submissions) == ["default", "default", "long"]
        assert assign_splits_to_workers(session, env.backend) == []  # nothing submitted twice

        for sub in submissions:
            job = _show_job(slurm, sub.job_id)
            expected = {"default": ("cpu", "00:10:00", "300M", "1", "8"),
                        "long": ("long", "02:00:00", "200M", "2", "4")}
            assert (job["Partition"], job["TimeLimit"], job["MinMemoryNode"], job["CPUs/Task"],
                    job["ArrayTaskThrottle"]) == expected[sub.queue], job
            assert job["JobName"] == sub.tag

        records = wait_sacct(slurm, [s.job_id for s in submissions],
                             lambda rs: len(rs) == 12 and all(r.state == "COMPLETED" for r in rs))
        assert sorted((r.state, r.partition) for r in records) == (
            [("COMPLETED", "cpu")] * 8 + [("COMPLETED", "long")] * 4
        )

        splits = session.scalars(select(JobSplit)).all()
        assert {s.slurm_element_id for s in splits} == {f"{r.array_job_id}_{r.array_task_id}" for r in records}
        experiment = session.get(Experiment, experiment_id)
        for b in experiment.blocks:
            for output in b.outputs:
                assert is_cache_complete(cache_path(output.hash), 4, env.config.cache_root), b.name
        by_element = {s.slurm_element_id: s for s in splits}
        for sub in submissions:
            spool = env.config.spool_dir / sub.tag
            assert sorted(p.name for p in spool.glob("*.json*") if "result" not in p.name) == ["manifest.jsonl"]
            for index in range(4):
                result = json.loads((spool / f"split-{index}.result.json").read_text())
                assert result["status"] == 0 and not result["system_error"], result
                # element <job>_<index> ran the manifest entry of the split recorded under that element id
                split = by_element[f"{sub.job_id}_{index}"]
                out = (spool / f"slurm-{sub.job_id}_{index}.out").read_text()
                assert f"split {index} (split {split.id}, job {split.job_id}," in out, out


class CrashAfterSubmit:
    """A Slurm client that really submits, then dies before the bridge can record the array id."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def submit(self, script, directives=None):
        self.real.submit(script, directives)
        raise KeyboardInterrupt("simulated crash right after the submission")


def test_a_crash_between_claim_and_record_is_reconciled_without_resubmitting(tmp_path, slurm_cluster, slurm,
                                                                            slurm_client):
    """Through both Slurm clients: the claim's tag finds the array in slurmctld's job table, nothing goes twice."""
    crashing = make_env(tmp_path, slurm_cluster, slurm, client=slurm_client)
    crashing.backend = dataclasses.replace(crashing.backend, client=CrashAfterSubmit(crashing.backend.client))
    _schedule(crashing, {"name": "crash", "author": "bob", "blocks": {"a": block("square", slots=3, size=6)}})
    with crashing.sessions() as session:
        with pytest.raises(KeyboardInterrupt):
            assign_splits_to_workers(session, crashing.backend)
    with crashing.sessions() as session:  # the restarted bridge
        claimed = session.scalars(select(JobSplit)).all()
        tags = {s.submission_tag for s in claimed}
        assert len(tags) == 1 and all(s.slurm_job_id is None for s in claimed)
        restarted = make_env(tmp_path, slurm_cluster, slurm, client=slurm_client)
        assert reconcile_claims(session, restarted.backend, older_than=0) == 1
        assert assign_splits_to_workers(session, restarted.backend) == []
        session.expire_all()
        splits = session.scalars(select(JobSplit)).all()
        (tag,) = tags
        job_id = restarted.backend.client.find(tag)
        assert {s.slurm_element_id for s in splits} == {f"{job_id}_{i}" for i in range(3)}
        records = wait_sacct(slurm, [job_id], lambda rs: len(rs) == 3)
        assert len({r.array_job_id for r in records}) == 1


class FlakySbatch:
    """Fault injection a real cluster cannot produce: the first sbatch times out, or never reached slurmctld."""

    def __init__(self, real, mode: str):
        self.real, self.mode, self.sbatch_calls = real, mode, 0

    def run(self, argv, stdin=None, timeout=60.0):
        if argv[0] != "sbatch":
            return self.real.run(argv, stdin=stdin, timeout=timeout)
        self.sbatch_calls += 1
        if self.sbatch_calls == 1 and self.mode == "never-sent":
            return CommandResult(tuple(argv), 1, "",
                                 "sbatch: error: Batch job submission failed: "
                                 "Unable to contact slurm controller (connect failure)\n")
        result = self.real.run(argv, stdin=stdin, timeout=timeout)
        if self.sbatch_calls == 1 and self.mode == "accepted-then-timeout":
            raise CommandTimeout(argv, None, "", "")
        return result


@pytest.mark.parametrize("mode", ["never-sent", "accepted-then-timeout"])
def test_transient_sbatch_errors_are_retried_and_submit_exactly_once(tmp_path, slurm_cluster, slurm, mode):
    flaky = FlakySbatch(slurm, mode)
    env = make_env(tmp_path, slurm_cluster, flaky)
    _schedule(env, {"name": f"flaky-{mode}", "author": "carol", "blocks": {"a": block("square", slots=2, size=4)}})
    with env.sessions() as session:
        (sub,) = assign_splits_to_workers(session, env.backend)
    # never-sent: sbatch ran twice; accepted-then-timeout: the tag was found, no second sbatch
    assert flaky.sbatch_calls == (2 if mode == "never-sent" else 1)
    from datetime import datetime, timedelta

    text = slurm.run(sacct_argv(datetime.now() - timedelta(minutes=5), names=[sub.tag], fields=("JobID",)),
                     timeout=30).stdout
    wait_sacct(slurm, [sub.job_id], lambda rs: len(rs) == 2)
    text = slurm.run(sacct_argv(datetime.now() - timedelta(minutes=5), names=[sub.tag], fields=("JobID",)),
                     timeout=30).stdout
    assert {line.split("_")[0] for line in text.split()} == {str(sub.job_id)}


BROKEN_QUEUES = (queue_toml("default") + queue_toml("ghost", "nosuch")
                 + queue_toml("templated", extra='template = "broken.sbatch.j2"'))


def test_permanent_errors_fail_only_their_splits_with_the_cause_and_the_rest_carry_on(tmp_path, slurm_cluster, slurm):
    (tmp_path / "templates").mkdir()
    template = tmp_path / "templates" / "broken.sbatch.j2"
    template.write_text("{% extends 'array.sbatch.j2' %}\n")  # a broken one is refused when the config loads
    env = make_env(tmp_path, slurm_cluster, slurm, queues=BROKEN_QUEUES, extra='templates_dir = "templates"')
    template.write_text("#!/bin/bash\necho {{ no_such_variable | shquote }}\n")  # an admin's edit while it runs
    for factor, (name, queue) in enumerate((("ok", "default"), ("ghost", "ghost"), ("templated", "templated"))):
        # different parameters, so that no job becomes a mirror of another
        _schedule(env, {"name": name, "author": "dave", "blocks": {
            "a": block("scale", queue=queue, slots=2, size=4, parameters={"factor": factor})}})
    with env.sessions() as session:
        submissions = assign_splits_to_workers(session, env.backend)
        assert [s.queue for s in submissions] == ["default"]
        failed: dict[str, list[str]] = {}
        for result in session.scalars(select(Result)):  # job rows of failed jobs are gone, results stay
            failed.setdefault(session.get(Block, result.block_id).experiment.name, []).append(result.system_error)
        assert sorted(failed) == ["ghost", "templated"] and all(len(v) == 2 for v in failed.values()), failed
        assert all("Invalid partition name specified" in e for e in failed.get("ghost", ["-"])), failed
        assert all("no_such_variable" in e and "broken.sbatch.j2" in e for e in failed.get("templated", ["-"])), failed
        experiments = {e.name: e.status.value for e in session.scalars(select(Experiment))}
        assert experiments["ghost"] == "F" and experiments["templated"] == "F" and experiments["ok"] == "S"


HELD = queue_toml("held", memory_limit=100, time_limit=5, max_slots_per_user=5000,
                  extra='extra_directives = ["--hold"]')


def test_a_job_of_more_splits_than_max_array_size_goes_out_in_chunks_with_offset_indices(
    tmp_path, slurm_cluster, slurm
):
    env = make_env(tmp_path, slurm_cluster, slurm, queues=HELD)
    limit = env.backend.client.max_array_size()  # read from scontrol show config: 1001 on the local cluster
    total = limit + 4
    _schedule(env, {"name": "big", "author": "erin",
                    "blocks": {"a": block("square", queue="held", slots=total, size=total)}})
    with env.sessions() as session:
        submissions = assign_splits_to_workers(session, env.backend)
        try:
            assert sorted(len(s.split_ids) for s in submissions) == [4, limit]
            splits = {s.split_index: s for s in session.scalars(select(JobSplit))}
            first, second = sorted(submissions, key=lambda s: len(s.split_ids), reverse=True)
            assert splits[0].slurm_element_id == f"{first.job_id}_0"
            assert splits[limit - 1].slurm_element_id == f"{first.job_id}_{limit - 1}"
            assert splits[limit].slurm_element_id == f"{second.job_id}_0"  # index = split index - offset
            spool = env.config.spool_dir / second.tag
            header, *lines = (spool / "manifest.jsonl").read_text().splitlines()
            assert json.loads(header)["offset"] == limit and json.loads(header)["first"] == 0
            assert [json.loads(line)["split_index"] for line in lines] == [limit + i for i in range(4)]
            assert read_element(spool, 3).configuration["split_index"] == limit + 3
            shown = _show_job(slurm, second.job_id)
            assert shown["ArrayTaskId"].startswith("0-3"), shown
        finally:
            slurm.run(["scancel", *(str(s.job_id) for s in submissions)], timeout=60)
