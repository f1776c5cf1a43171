"""One scancel per cycle, never for what Slurm reports final, and again until Slurm does (issue 9, hole 4).

Through the replay fake: recorded squeue rows of the live cluster (failed,
running, completed scenarios), and a timed-out scancel a cluster cannot
produce on demand.
"""

from __future__ import annotations

import pytest
from fakes import EMPTY, TIMEOUT, Answer, Recording
from replay_env import block, cycle, declare, make_replay_env, recorded_stdout, status_of, statuses, submit


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def rows(scenario, sub, index):
    """squeue's row for element `index` of the submission in a recorded scenario."""
    return [line for line in recorded_stdout(scenario, "squeue", sub).splitlines()
            if line.startswith(f"{sub.job_id}_{index}|")]



def test_every_element_to_stop_in_a_cycle_goes_into_one_scancel(env):
    env.fake.always("scontrol", Answer("MaxArraySize = 3\n"))
    declare(env, {"a": block(slots=2)}, name="one")
    first = submit(env, job=100)
    declare(env, {"b": block(slots=5, size=5)}, name="two")  # two arrays: indices 0-2, then 3-4
    # In one cycle: "one" fails (its running sibling must stop); b's first array goes out and Slurm
    # refuses its second for good, so b fails and the first array's elements must stop too.
    env.fake.then("sbatch", Answer("500\n"), Recording.load("sbatch").answer("sbatch_bad_partition", 0, ""))
    env.fake.then("squeue", Answer("\n".join(rows("failed", first, 0) + rows("running", first, 1)) + "\n"))
    env.fake.always("scancel", EMPTY)
    report = cycle(env)
    assert env.fake.count("sbatch") == 3  # both of b's arrays were tried in this cycle
    assert env.fake.count("scancel") == 1
    assert sorted(report.cancelled) == ["100_1", "500_0", "500_1", "500_2"]


def test_an_element_slurm_reports_final_is_not_scancelled(env):
    declare(env, {"a": block(slots=2)})
    sub = submit(env)
    env.fake.then("squeue", Answer("\n".join(rows("failed", sub, 0) + rows("completed", sub, 1)) + "\n"))
    cycle(env)
    assert env.fake.count("scancel") == 0


def test_a_lost_scancel_is_sent_again_until_slurm_reports_the_element_final(env):
    experiment = declare(env, {"a": block(slots=2)})
    sub = submit(env)
    env.fake.then("squeue", Answer("\n".join(rows("failed", sub, 0) + rows("running", sub, 1)) + "\n"))
    env.fake.then("scancel", TIMEOUT)
    cycle(env)  # the scancel is lost
    env.fake.then("squeue", Answer("\n".join(rows("running", sub, 1)) + "\n")).then("scancel", EMPTY)
    cycle(env)  # still running: scancelled again
    cancelled = [line.replace("RUNNING", "CANCELLED") for line in rows("running", sub, 1)]
    env.fake.then("squeue", Answer("\n".join(cancelled) + "\n"))
    cycle(env)  # final now: no more scancel
    assert [argv[1:] for argv in env.fake.of("scancel")] == [(f"{sub.job_id}_1",)] * 2
    assert statuses(env) == [] and status_of(env, experiment) == "F"  # the block ended: its job rows are gone
