"""The submitter's decisions, without a cluster: sbatch, the tag look-up and claims, through the replay fake.

The database, the spool files and the rendered scripts are real; Slurm's
answers are recorded ones (tests/data/replay/sbatch.json, find.json) or faults
a real cluster cannot produce on demand (a timeout, a lost connection).
"""

from __future__ import annotations

import re

import pytest
from fakes import EMPTY, NOT_SUBMITTED, SACCT_DOWN, TIMEOUT, TRANSIENT, Answer, Recording
from replay_env import JOB, block, claim_all, declare, make_replay_env, splits, submit_all
from sqlalchemy import select

from bridge.models import Result
from bridge.submit import reconcile_claims
from bridge.tags import new_tag


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)



def recorded(scenario, name, job=JOB, tag=""):
    return Recording.load(scenario).answer(name, job, tag)


def test_one_array_per_job_recorded_under_its_tag(env):
    declare(env, {"a": block(slots=3, size=6)})
    env.fake.then("sbatch", recorded("sbatch", "sbatch"))
    (sub,) = submit_all(env)
    assert env.fake.count("sbatch") == 1 and sub.job_id == JOB
    script = env.fake.scripts()[0]
    assert f"#SBATCH --job-name={sub.tag}" in script and "#SBATCH --array=0-2%8" in script
    assert [s.slurm_element_id for s in splits(env)] == [f"{JOB}_0", f"{JOB}_1", f"{JOB}_2"]
    assert submit_all(env) == [] and env.fake.count("sbatch") == 1  # nothing submitted twice


def test_an_sbatch_that_never_reached_slurmctld_is_run_again(env):
    declare(env, {"a": block()})
    env.fake.then("sbatch", NOT_SUBMITTED, recorded("sbatch", "sbatch"))
    (sub,) = submit_all(env)
    assert env.fake.count("sbatch") == 2 and env.fake.count("find_squeue") == 0 and sub.job_id == JOB


def test_a_socket_timeout_reported_by_sbatch_is_looked_up_not_run_again(env):
    declare(env, {"a": block()})
    env.fake.then("sbatch", TRANSIENT).always("find_squeue", Answer(f"{JOB}\n"))
    (sub,) = submit_all(env)  # "Socket timed out": slurmctld may have taken it, and did
    assert env.fake.count("sbatch") == 1 and sub.job_id == JOB


def test_a_timed_out_sbatch_that_slurm_accepted_is_found_not_resubmitted(env):
    declare(env, {"a": block()})
    env.fake.then("sbatch", TIMEOUT)
    env.fake.always("find_squeue", Answer(f"{JOB + 7}\n"))  # squeue knows the tag: it went through
    (sub,) = submit_all(env)
    assert sub.job_id == JOB + 7 and env.fake.count("sbatch") == 1
    assert {s.slurm_job_id for s in splits(env)} == {str(JOB + 7)}


@pytest.mark.parametrize("name, cause", [("sbatch_bad_partition", "Invalid partition name specified"),
                                         ("sbatch_bad_time", "Requested time limit is invalid")])
def test_a_permanent_refusal_fails_the_splits_with_slurms_words_and_is_not_retried(env, name, cause):
    experiment = declare(env, {"a": block()})
    env.fake.then("sbatch", recorded("sbatch", name))
    assert submit_all(env) == []
    assert env.fake.count("sbatch") == 1 and env.fake.count("find_squeue") == 0
    assert [s.status.value for s in splits(env)] == []  # the failed block's job rows are gone
    with env.sessions() as session:
        errors = {r.system_error for r in session.scalars(select(Result))}
        from bridge.models import Experiment
        assert session.get(Experiment, experiment).status.value == "F"
    assert any(cause in (e or "") for e in errors), errors


def test_sbatch_never_reaching_slurmctld_on_every_attempt_releases_the_claim(env):
    declare(env, {"a": block()})
    env.fake.always("sbatch", NOT_SUBMITTED)
    assert submit_all(env) == []
    assert env.fake.count("sbatch") == 3  # [retry] attempts = 3 in the replay config
    assert env.fake.count("find_squeue") == 0  # nothing was submitted: nothing to look up
    assert [(s.status.value, s.submission_tag) for s in splits(env)] == [("N", None), ("N", None)]



def test_reconcile_records_a_claim_whose_tag_squeue_knows(env):
    declare(env, {"a": block()})
    tag = new_tag()  # made by this process: settled at once
    claim_all(env, tag)
    env.fake.then("find_squeue", recorded("find", "find_squeue", tag=tag))
    with env.sessions() as session:
        assert reconcile_claims(session, env.backend) == 1
    assert [s.slurm_element_id for s in splits(env)] == [f"{JOB}_0", f"{JOB}_1"]


def test_reconcile_finds_in_sacct_what_squeue_forgot(env):
    declare(env, {"a": block()})
    tag = new_tag()
    claim_all(env, tag)
    env.fake.then("find_squeue", EMPTY).then("find_sacct", recorded("find", "find_sacct", tag=tag))
    with env.sessions() as session:
        assert reconcile_claims(session, env.backend) == 1
    assert {s.slurm_job_id for s in splits(env)} == {str(JOB)}
    (argv,) = env.fake.of("find_sacct")
    assert argv[argv.index("--name") + 1] == tag


@pytest.mark.parametrize("grace, released", [(0.0, True), (3600.0, False)])
def test_reconcile_releases_a_tag_only_after_consecutive_misses_spanning_the_grace(tmp_path, grace, released):
    env = make_replay_env(tmp_path, extra=f"[claims]\nmisses = 3\ngrace = {grace}\n")
    declare(env, {"a": block()})
    tag = new_tag()
    claim_all(env, tag)
    env.fake.always("find_squeue", recorded("find", "find_squeue_unknown", tag=tag))
    env.fake.always("find_sacct", recorded("find", "find_sacct_unknown", tag=tag))
    for _ in range(2):
        with env.sessions() as session:
            assert reconcile_claims(session, env.backend) == 0  # misses 1 and 2: kept
    with env.sessions() as session:
        assert reconcile_claims(session, env.backend) == int(released)
    expected = (None, None) if released else (tag, None)
    assert [(s.submission_tag, s.slurm_job_id) for s in splits(env)] == [expected, expected]


def test_a_failed_look_up_between_misses_starts_the_count_again(tmp_path):
    env = make_replay_env(tmp_path, extra="[claims]\nmisses = 2\ngrace = 0.0\n")
    declare(env, {"a": block()})
    tag = new_tag()
    claim_all(env, tag)
    env.fake.then("find_squeue", EMPTY, EMPTY, EMPTY).then("find_sacct", EMPTY, SACCT_DOWN, EMPTY)
    for _ in range(3):  # miss, unknown, miss: never two misses in a row
        with env.sessions() as session:
            assert reconcile_claims(session, env.backend) == 0
    assert {s.submission_tag for s in splits(env)} == {tag}


def test_reconcile_keeps_the_claim_while_sacct_cannot_answer(env):
    declare(env, {"a": block()})
    tag = new_tag()
    claim_all(env, tag)
    env.fake.then("find_squeue", EMPTY).then("find_sacct", SACCT_DOWN)
    with env.sessions() as session:
        assert reconcile_claims(session, env.backend) == 0
    assert {s.submission_tag for s in splits(env)} == {tag}


def test_a_claim_of_another_live_submitter_is_left_alone(env):
    declare(env, {"a": block()})
    tag = new_tag(pid=1)  # pid 1 is alive: another submitter, young claim
    claim_all(env, tag)
    with env.sessions() as session:
        assert reconcile_claims(session, env.backend) == 0
    assert env.fake.count("find_squeue") == 0


def test_a_job_over_max_array_size_goes_out_in_chunks_with_an_offset(env):
    env.fake.always("scontrol", Answer("MaxArraySize = 3\n"))
    declare(env, {"a": block(slots=5, size=5)})
    env.fake.then("sbatch", Answer("500\n"), Answer("501\n"))
    first, second = submit_all(env)
    arrays = [re.search(r"--array=(\S+)", s).group(1) for s in env.fake.scripts()]
    assert arrays == ["0-2%8", "0-1%8"]  # split indices 3, 4 are array indices 0, 1 of the second
    assert [s.slurm_element_id for s in splits(env)] == ["500_0", "500_1", "500_2", "501_0", "501_1"]
