"""The poller's memory of the active splits (poller.memory), through the replay fake, on SQLite and PostgreSQL.

The memory only filters: a poll where nothing changed touches no split row; a
change made by another session (another daemon, the CLI, the web server)
between polls is seen at the next poll; the poller's own events re-read only
their splits; a restart (a fresh memory) adopts everything again.
"""

from __future__ import annotations

import pytest
from fakes import Answer
from replay_env import block, declare, make_replay_env, recorded_stdout, splits, status_of, statuses, submit
from sqlalchemy import event, text

from bridge.db import create_session_factory
from bridge.submission_db import requeue_lost
from poller.memory import FULL_READ_EVERY, ActiveMemory
from poller.poll import poll_once
from poller.unknown import UnknownStates

T0 = 1_800_000_000.0


@pytest.fixture
def env(tmp_path, db_url):
    return make_replay_env(tmp_path, db_url=db_url)


def rows(states: dict[str, str]):
    """squeue's recorded line format, made for the call's own -j list: each element in its state, or pending."""
    def reply(argv):
        lines = []
        for job in argv[argv.index("-j") + 1].split(","):
            mine = {e: s for e, s in states.items() if e.startswith(f"{job}_")}
            for element, state in mine.items():
                lines.append(f"{element}|{job}|cpu|{state}|n1|2026-12-01T13:19:38|2026-12-01T13:19:40|"
                             f"2026-12-01T14:19:40|0|bb-t{job}|")
            if not mine:
                lines.append(f"{job}_[0-9]|{job}|cpu|PENDING||2026-12-01T13:19:38|N/A|N/A|0|bb-t{job}|")
        return Answer("\n".join(lines) + "\n")
    return Answer(reply=reply)


def statements(env) -> list[str]:
    """Every SQL statement the engine runs from now on (a live list)."""
    seen: list[str] = []
    event.listen(env.sessions.kw["bind"], "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: seen.append(statement))
    return seen


def poll_with(env, memory, **kwargs):
    with env.sessions() as session:
        return poll_once(session, env.backend, memory=memory, **kwargs)


def test_a_held_array_polled_again_reads_one_row_and_touches_no_split(env):
    declare(env, {"a": block(slots=2, size=2)})
    sub = submit(env)
    env.fake.always("squeue", Answer(recorded_stdout("pending", "squeue", sub)))
    memory = ActiveMemory()
    first = poll_with(env, memory)
    seen = statements(env)
    again = [poll_with(env, memory) for _ in range(3)]
    assert first.active == 2 and all(r.active == 2 and not r.events and not r.missing for r in again)
    assert not [s for s in seen if "job_splits" in s]  # the counter only
    assert statuses(env) == ["N", "N"] and memory.full_reads == 1


def test_its_own_started_event_is_read_again_alone_and_not_applied_twice(env):
    declare(env, {"a": block(slots=2)})
    sub = submit(env)
    env.fake.always("squeue", Answer(recorded_stdout("running", "squeue", sub)))
    memory = ActiveMemory()
    assert sorted(e for _, e in poll_with(env, memory).events) == ["started", "started"]
    seen = statements(env)
    assert poll_with(env, memory).events == []
    assert (memory.full_reads, memory.partial_reads) == (1, 1)
    assert not [s for s in seen if s.lstrip().upper().startswith("UPDATE")]  # nothing owed: no transaction
    assert statuses(env) == ["P", "P"]


def test_a_split_another_session_requeued_and_resubmitted_is_followed_under_its_new_array(env, db_url):
    declare(env, {"a": block(slots=1)})
    first = submit(env, job=5000)
    memory = ActiveMemory()
    env.fake.then("squeue", rows({"5000_0": "RUNNING"}))
    assert [e for _, e in poll_with(env, memory).events] == ["started"]
    other = create_session_factory(db_url)  # another daemon's connection: requeue and resubmit
    with other() as session:
        assert requeue_lost(session, first.split_ids[0], "5000", "its array was lost")
    submit(env, job=5001)
    env.fake.then("squeue", rows({"5001_0": "RUNNING"}))
    report = poll_with(env, memory)
    (asked,) = env.fake.of("squeue")[-1:]
    assert asked[asked.index("-j") + 1] == "5001"  # the new array, not the one the memory had seen
    assert report.missing == [] and memory.full_reads == 2
    (split,) = splits(env)
    assert (split.slurm_element_id, split.slurm_state, split.status.value) == ("5001_0", "RUNNING", "P")


def test_an_array_another_session_submitted_is_polled_at_the_next_poll(env):
    declare(env, {"a": block(slots=1)})
    submit(env, job=6000)
    env.fake.always("squeue", rows({}))
    memory = ActiveMemory()
    assert poll_with(env, memory).active == 1
    declare(env, {"b": block(slots=1, parameters={"other": 1})}, name="second")
    submit(env, job=6001)  # the submitter's transactions: the counter moves
    env.fake.always("squeue", rows({"6001_0": "RUNNING"}))
    report = poll_with(env, memory)
    assert report.active == 2 and report.events == [(splits(env)[1].id, "started")]


def test_a_failure_reads_every_split_again_and_its_cancelled_sibling_ends_as_asked(env):
    experiment = declare(env, {"a": block(slots=2)})
    sub = submit(env, job=7000)
    memory = ActiveMemory()
    env.fake.then("squeue", rows({"7000_0": "RUNNING", "7000_1": "RUNNING"}))
    poll_with(env, memory)
    env.fake.then("squeue", rows({"7000_0": "FAILED", "7000_1": "RUNNING"}))
    assert poll_with(env, memory).events == [(sub.split_ids[0], "failed:failed")]
    assert statuses(env) == ["F", "K"]
    env.fake.then("squeue", rows({"7000_0": "FAILED", "7000_1": "CANCELLED"}))
    assert poll_with(env, memory).events == [(sub.split_ids[1], "cancelled")]
    assert status_of(env, experiment) == "F" and memory.full_reads == 2  # the job settled: its rows are gone


def test_a_write_that_bypassed_the_lock_is_seen_after_invalidate_or_the_backstop(env):
    declare(env, {"a": block(slots=1)})
    submit(env, job=8000)
    now = [0.0]
    memory = ActiveMemory(clock=lambda: now[0])
    env.fake.always("squeue", rows({}))  # pending: no event, no transaction of the poller's own
    poll_with(env, memory)
    with env.sessions() as session:  # no scheduler lock: the counter does not move
        session.execute(text("UPDATE job_splits SET slurm_job_id = '8001', slurm_element_id = '8001_0'"))
        session.commit()
    poll_with(env, memory)
    assert env.fake.of("squeue")[-1][-3] == "8000"  # the memory did not know
    memory.invalidate()
    poll_with(env, memory)
    assert env.fake.of("squeue")[-1][-3] == "8001"
    with env.sessions() as session:
        session.execute(text("UPDATE job_splits SET slurm_job_id = '8002', slurm_element_id = '8002_0'"))
        session.commit()
    now[0] = FULL_READ_EVERY + 1
    poll_with(env, memory)
    assert env.fake.of("squeue")[-1][-3] == "8002"


def test_a_restart_adopts_every_active_split_again(env):
    declare(env, {"a": block(slots=2)})
    sub = submit(env)
    env.fake.always("squeue", Answer(recorded_stdout("running", "squeue", sub)))
    poll_with(env, ActiveMemory())
    restarted = ActiveMemory()
    report = poll_with(env, restarted)
    assert (report.active, report.events, restarted.full_reads) == (2, [], 1)


def test_an_unknown_state_and_a_missing_element_are_looked_at_on_every_poll(env):
    declare(env, {"a": block(slots=2)})
    sub = submit(env)
    weird = recorded_stdout("running", "squeue", sub).splitlines()[1].replace("RUNNING", "WEIRD_NEW_STATE")
    env.fake.always("squeue", Answer(weird + "\n"))  # element 0 unknown to squeue
    env.fake.always("sacct", Answer(""))  # and not yet recorded by slurmdbd
    memory, watch = ActiveMemory(), UnknownStates(bound=300.0)
    reports = [poll_with(env, memory, now=T0 + offset, watch=watch) for offset in (0.0, 301.0, 400.0)]
    weird_split = next(s.id for s in splits(env) if s.slurm_state == "WEIRD_NEW_STATE")
    assert [r.unknown for r in reports] == [[], [(weird_split, "WEIRD_NEW_STATE")], [(weird_split, "WEIRD_NEW_STATE")]]
    assert all(len(r.missing) == 1 for r in reports)  # submitted long before T0: past the grace period


def test_after_its_own_event_the_memory_still_finds_the_element_slurm_does_not_show(env):
    """The splits Slurm does not show are corrected in place after the poller's own events, not lost."""
    declare(env, {"a": block(slots=3, size=3)})
    sub = submit(env, job=9000)
    env.fake.always("squeue", rows({"9000_0": "RUNNING", "9000_1": "PENDING"}))  # 9000_2: not shown
    env.fake.always("sacct", Answer(""))  # nor recorded by slurmdbd yet
    memory = ActiveMemory()
    reports = [poll_with(env, memory, now=T0 + offset) for offset in (0.0, 1.0, 2.0)]
    assert [r.events for r in reports] == [[(sub.split_ids[0], "started")], [], []]
    assert [r.missing for r in reports] == [[sub.split_ids[2]]] * 3
    assert memory.partial_reads == 1


def test_idle_cycles_take_no_lock_so_the_memory_stays_current(env):
    """A whole cycle with nothing to split, cancel or submit leaves the counter alone: no full read again."""
    from poller.loop import run_cycle

    declare(env, {"a": block(slots=2, size=2)})
    sub = submit(env)
    env.fake.always("squeue", Answer(recorded_stdout("pending", "squeue", sub)))
    memory = ActiveMemory()
    for _ in range(3):
        with env.sessions() as session:
            report = run_cycle(session, env.backend, memory=memory)
        assert report.error is None and report.poll.active == 2
    assert (memory.full_reads, memory.partial_reads) == (1, 0)
