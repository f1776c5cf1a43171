"""The poll at scale, without a cluster: 10,000 active arrays, squeue's id list chunked.

squeue's answer is made from each call's own `-j` list (the replay fake's
`reply`), in the recorded format, so the test checks that every element's state
is read from the chunk that asked for it, that no command line grows with the
number of arrays, and what one failing chunk means.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes import TIMEOUT, Answer
from replay_env import block, declare, make_replay_env, poll, submit
from sqlalchemy import insert, select

from bridge.models import JobSplit, utcnow
from poller.poll import active_splits

ARRAYS = 10_000
FIRST = 100_000  # array ids of the test: FIRST .. FIRST + ARRAYS - 1, one element each
ARGV_BOUND = 32_000  # characters: far below any ARG_MAX or login shell's limit


def squeue_rows(argv, running=frozenset()):
    """squeue's recorded line format for every array in the call's -j list: PENDING, or RUNNING."""
    ids = argv[argv.index("-j") + 1].split(",")
    lines = []
    for job in ids:
        if int(job) in running:
            lines.append(f"{job}_0|{job}|cpu|RUNNING|n1|2026-12-01T13:19:38|2026-12-01T13:19:40|"
                         f"2026-12-01T14:19:40|0|bb-t{job}|")
        else:
            lines.append(f"{job}_[0]|{job}|cpu|PENDING||2026-12-01T13:19:38|N/A|N/A|0|bb-t{job}|")
    return Answer("\n".join(lines) + "\n")


@pytest.fixture
def env(tmp_path):
    env = make_replay_env(tmp_path)
    declare(env, {"a": block(slots=1, size=1)})
    sub = submit(env, job=FIRST)
    old = utcnow() - timedelta(hours=1)  # long past the missing grace: an unseen element would be reported
    with env.sessions() as session:
        (first,) = session.scalars(select(JobSplit)).all()
        first.submit_time = old
        session.execute(insert(JobSplit), [
            {"job_id": first.job_id, "split_index": i, "start_index": 0, "end_index": 0, "status": "N",
             "submission_tag": f"{sub.tag}-{i}", "slurm_job_id": str(FIRST + i),
             "slurm_element_id": f"{FIRST + i}_0", "submit_time": old}
            for i in range(1, ARRAYS)])
        session.commit()
    return env


def test_ten_thousand_arrays_are_read_in_bounded_squeue_calls(env):
    running = {FIRST, FIRST + 1999, FIRST + 2000, FIRST + ARRAYS - 1}  # chunk edges, whatever the chunk
    env.fake.always("squeue", Answer(reply=lambda argv: squeue_rows(argv, running)))
    report = poll(env)
    calls = env.fake.of("squeue")
    asked = [job for argv in calls for job in argv[argv.index("-j") + 1].split(",")]
    assert sorted(map(int, asked)) == list(range(FIRST, FIRST + ARRAYS))  # each array asked once
    assert 1 < len(calls) <= 10 and max(len(" ".join(argv)) for argv in calls) < ARGV_BOUND
    assert (report.active, report.squeue_calls, report.sacct_calls) == (ARRAYS, len(calls), 0)
    assert report.missing == []  # every element read: pending, or with a record
    with env.sessions() as session:
        started = set(session.scalars(select(JobSplit.slurm_job_id).where(JobSplit.status == "P")))
    assert started == {str(job) for job in running} and len(report.events) == len(running)


def test_a_failing_squeue_chunk_is_a_squeue_error_and_sacct_reads_the_unread_arrays(env):
    """The round stops at the failing chunk (the next would most likely wait for their timeouts too)."""
    env.fake.then("squeue", Answer(reply=squeue_rows), TIMEOUT)
    env.fake.always("sacct", Answer(reply=lambda argv: Answer("")))  # slurmdbd has not recorded them yet
    with env.sessions() as session:
        view = env.backend.client.status(active_splits(session))
    read, failed = env.fake.of("squeue")
    read_ids = set(read[read.index("-j") + 1].split(","))
    assert "timed out" in view.squeue_error and "chunk 2 of" in view.squeue_error
    assert {e.partition("_")[0] for e in view.pending} == read_ids  # the chunk read is kept
    sacct_ids = {job for argv in env.fake.of("sacct") for job in argv[argv.index("-j") + 1].split(",")}
    assert sacct_ids == {str(job) for job in range(FIRST, FIRST + ARRAYS)} - read_ids
    assert view.squeue_calls == 2 and view.sacct_calls == len(env.fake.of("sacct"))
