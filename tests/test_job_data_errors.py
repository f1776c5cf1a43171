"""One job's bad data never stops the daemon (issue 9, bad input): an error that comes from a job's own
data is tolerated on two cycles and fails that job, naming the cause, on the third; other jobs go on.

The bad data is written straight into the block's row (as a corrupted or hand-edited database would
hold it), so the check does not depend on which inputs the declaration validator refuses.
"""

from __future__ import annotations

import pytest
from fakes import Answer
from replay_env import JOB, block, cycle, declare, make_replay_env, splits, status_of
from sqlalchemy import delete, select, update

from bridge.models import Block, JobSplit, Result


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)



def corrupt(env, experiment_name, command):
    with env.sessions() as session:
        session.execute(update(Block).where(Block.name == experiment_name).values(command=command))
        session.commit()


def errors(env):
    with env.sessions() as session:
        return [r.system_error for r in session.scalars(select(Result)) if r.system_error]


def test_a_job_whose_data_breaks_splitting_fails_on_the_third_cycle_and_others_go_on(env):
    bad = declare(env, {"bad": block()}, name="bad", author="mallory")
    # the row is corrupted before the job is split: split_new_jobs reads "size" as a string
    with env.sessions() as session:
        session.execute(delete(JobSplit))
        session.commit()
    corrupt(env, "bad", '{"inputs": {"in": {"dataset": "numbers", "size": "many"}}, "outputs": {}}')
    env.fake.always("sbatch", Answer(f"{JOB}\n"))
    cycle(env), cycle(env)
    assert status_of(env, bad) != "F"
    good = declare(env, {"good": block(size=6)}, name="good")
    report = cycle(env)
    assert status_of(env, bad) == "F" and status_of(env, good) != "F"
    assert any("'bad'" in e and "TypeError" in e for e in errors(env)), errors(env)
    assert report.submitted and all(s.slurm_job_id == str(JOB) for s in splits(env))


def test_a_job_whose_data_breaks_its_spool_file_fails_on_the_third_cycle_and_sbatch_never_runs(env):
    bad = declare(env, {"bad": block()}, name="bad", author="mallory")
    corrupt(env, "bad", "{not json")
    for _ in range(3):
        cycle(env)
    assert status_of(env, bad) == "F" and env.fake.count("sbatch") == 0
    assert any("'bad'" in e and "JSONDecodeError" in e for e in errors(env)), errors(env)
