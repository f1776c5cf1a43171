"""bridge.wake: the helpers that create work wake a waiting daemon (NOTIFY, data_version); quiet is quiet."""

from __future__ import annotations

from dbsupport import declare, run_block, two_blocks
from sqlalchemy import text, update

from bridge import helpers, wake
from bridge.models import DaemonHeartbeat
from poller.early import element_index, result_indices


def _signal(factory, ignore: str = "nobody") -> wake.Wake:
    """The daemon's change signal; on PostgreSQL counting this process's NOTIFYs (it plays the web server)."""
    engine = factory.kw["bind"]
    if engine.dialect.name == "postgresql":
        return wake.ListenWake(wake.listen_url(engine), ignore=ignore)
    return wake.open_wake(engine)


def test_scheduling_cancelling_and_unblocking_wake_the_waiting_daemon(factory, session, cache_root):
    signal = _signal(factory)
    try:
        exp = declare(session, two_blocks(), schedule=False)
        signal.mark()  # the daemon's cycle has seen what is there
        assert signal.wait(0.3) is False
        helpers.schedule_experiment(session, exp)
        assert signal.wait(30) is True  # woken, not timed out
        assert signal.changed() is False  # one change, seen once
        helpers.split_new_jobs(session, str(cache_root))
        signal.mark()
        run_block(session, exp, "first")  # on_split_done unblocks "second"
        assert signal.wait(30) is True
        signal.mark()
        assert helpers.cancel_experiment(session, exp)
        assert signal.wait(30) is True
    finally:
        signal.close()


def test_subscribers_hear_every_change_and_the_daemons_own_writes_before_mark_wake_no_one(factory, session):
    signal = _signal(factory)
    heard: list[int] = []
    signal.subscribe(lambda: heard.append(1))
    try:
        signal.mark()
        session.execute(update(DaemonHeartbeat).values(cycles=DaemonHeartbeat.cycles + 1))  # as each cycle does
        session.commit()
        signal.mark()  # poller.loop marks after its own writes
        assert signal.wait(0.3) is False and heard == []
        declare(session, two_blocks("other"))
        assert signal.wait(30) is True and heard == [1]
    finally:
        signal.close()


def test_on_postgresql_a_rolled_back_change_or_our_own_notify_wakes_no_one(postgres_url):
    from bridge.db import create_session_factory

    factory = create_session_factory(postgres_url)
    signal = wake.open_wake(factory.kw["bind"])  # ignores this process's NOTIFYs, as the daemon its own cycle's
    try:
        signal.mark()
        with factory() as s:
            wake.notify(s)
            s.rollback()
            wake.notify(s)
            s.commit()
        assert signal.wait(0.5) is False
        with factory() as s:  # another process's
            s.execute(text("SELECT pg_notify(:c, 'elsewhere:1')"), {"c": wake.CHANNEL})
            s.commit()
        assert signal.wait(30) is True
    finally:
        signal.close()
        factory.kw["bind"].dispose()


def test_result_files_of_an_array_are_found_by_index(tmp_path):
    for name in ("split-0.result.json", "split-12.result.json", "split-3.json", "split-x.result.json",
                 "slurm-5_3.err"):
        (tmp_path / name).write_text("{}")
    assert result_indices(tmp_path) == {0, 12}
    assert result_indices(tmp_path / "gone") == set()
    assert element_index("1234_12") == 12


def test_on_sqlite_a_commit_between_two_of_the_daemons_own_is_not_taken_for_its_own(sqlite_url):
    from sqlalchemy.orm import sessionmaker

    from bridge.db import create_session_factory

    daemon = create_session_factory(sqlite_url)
    other = sessionmaker(daemon.kw["bind"])  # another writer (in another process, in real life)
    signal = wake.open_wake(daemon.kw["bind"])
    signal.exclude_own(daemon)
    beat = update(DaemonHeartbeat).values(cycles=DaemonHeartbeat.cycles + 1)
    try:
        signal.mark()
        for sessions in (daemon, other, daemon):  # the cycle's commits, with the web server's between them
            with sessions() as s:
                s.execute(beat)
                s.commit()
        signal.mark()  # as the loop does before waiting: the other writer's commit still counts
        assert signal.wait(30) is True
        with daemon() as s:
            s.execute(beat)
            s.commit()
        assert signal.wait(0.3) is False  # the daemon's own commits alone wake no one
    finally:
        signal.close()


def test_on_sqlite_a_commit_during_one_of_the_daemons_read_only_commits_still_wakes_it(sqlite_url):
    """A read-only transaction holds no write lock: another process may commit between the two reads around it.

    (The served `experiments add --schedule` commits its schedule while the cycle its declaration woke
    commits its reads: the wake-up was lost and the experiment waited for the idle interval, 10 s.)
    """
    from sqlalchemy import event, select
    from sqlalchemy.orm import sessionmaker

    from bridge.db import create_session_factory

    daemon = create_session_factory(sqlite_url)
    other = sessionmaker(daemon.kw["bind"])  # another writer (in another process, in real life)
    signal = wake.open_wake(daemon.kw["bind"])
    signal.exclude_own(daemon)
    beat = update(DaemonHeartbeat).values(cycles=DaemonHeartbeat.cycles + 1)

    def meanwhile(session) -> None:  # runs after the wake's own before_commit read, before the commit
        with other() as s:
            s.execute(beat)
            s.commit()

    try:
        signal.mark()
        event.listen(daemon, "before_commit", meanwhile)
        with daemon() as s:  # a cycle that only read
            s.scalar(select(DaemonHeartbeat.cycles))
            s.commit()
        event.remove(daemon, "before_commit", meanwhile)
        assert signal.wait(5) is True
        with daemon() as s:  # a read-only commit of ours alone wakes no one either
            s.scalar(select(DaemonHeartbeat.cycles))
            s.commit()
        assert signal.wait(0.3) is False
    finally:
        signal.close()
