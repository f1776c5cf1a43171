"""Random event orders (seeded): nothing raises, invariants hold, everything ends settled.

The poller sees only what Slurm has; it may repeat, reorder or deliver events
late, and experiments get cancelled and rescheduled at any time.
"""

from __future__ import annotations

import random

import pytest
from dbsupport import OK, block, declare
from sqlalchemy import select

from bridge import helpers
from bridge.history import identity_of
from bridge.models import Block, CachedFile, Experiment, Job, JobSplit
from bridge.scheduling import upsert_queue
from bridge.submission_db import mark_splits_submitting, record_submission


def _declarations():
    shared = block("pkg.shared:f", slots=2, queue="big")
    def chain(name, author, param):
        return {"name": name, "author": author, "blocks": {
            "a": dict(shared),
            "b": block("pkg.b:f", queue="big", inputs={"in": {"block": "a", "output": "out"}},
                       parameters={"p": param}),
            "c": block("pkg.c:f", slots=3, queue="big", dependencies=["a"]),
        }}
    return [chain("e1", "alice", 1), chain("e2", "bob", 1), chain("e3", "bob", 2)]


class World:
    """Drives the helpers like a bridge + poller + users would, at random."""

    def __init__(self, session, rng):
        self.s, self.rng, self.seen, self.tags = session, rng, [], 0

    def splits(self, *statuses):
        query = select(JobSplit).order_by(JobSplit.id)
        if statuses:
            query = query.where(JobSplit.status.in_(statuses))
        return list(self.s.scalars(query))

    def submit(self):
        queue = self.s.scalar(select(Block.queue_id).limit(1))
        candidates = helpers.retrieve_candidate_splits_for_queue(self.s, queue)
        if candidates:
            self.tags += 1
            tag = f"t{self.tags}"
            claimed = mark_splits_submitting(self.s, candidates, tag)
            # ids without a reload: the commit expired them, and another session may delete them
            ids = [identity_of(s) for s in claimed]
            record_submission(self.s, tag, 1000 + self.tags)
            self.seen.extend(ids)

    def event(self):
        on_slurm = [s for s in self.splits() if s.slurm_job_id is not None]
        split = self.rng.choice(on_slurm) if on_slurm else None
        late = self.rng.choice(self.seen) if self.seen else None
        experiments = list(self.s.scalars(select(Experiment).order_by(Experiment.id)))
        exp = self.rng.choice(experiments)
        actions = [
            lambda: helpers.split_new_jobs(self.s),
            self.submit,
            lambda: helpers.process_newly_cancelled_experiments(self.s),
            lambda: helpers.cancel_experiment(self.s, exp) if self.rng.random() < 0.2 else None,
            lambda: helpers.schedule_experiment(self.s, exp),
        ]
        if split is not None:
            actions += [
                lambda: helpers.on_split_started(self.s, split),
                lambda: helpers.on_split_done(self.s, split, OK),
                lambda: helpers.on_split_done(self.s, split, OK),
                lambda: helpers.on_split_fail(self.s, split, "boom")
                if self.rng.random() < 0.15 else None,
                lambda: helpers.on_split_cancelled(self.s, split)
                if split.status == "K" or self.rng.random() < 0.05 else None,
            ]
        if late is not None:
            actions.append(lambda: self.rng.choice([
                helpers.on_split_started, helpers.on_split_cancelled,
                lambda s, i: helpers.on_split_done(s, i, OK),
                lambda s, i: helpers.on_split_fail(s, i, "late"),
            ])(self.s, late))
        self.rng.choice(actions)()

    def drain(self):
        """Let Slurm finish everything: cancel what is cancelling, complete the rest."""
        for _ in range(200):
            helpers.process_newly_cancelled_experiments(self.s)
            helpers.split_new_jobs(self.s)
            self.submit()
            active = self.splits("N", "P", "K")
            if not active:
                return
            for split in active:
                if split.slurm_job_id is None:
                    continue
                if split.status == "K":
                    helpers.on_split_cancelled(self.s, split)
                else:
                    helpers.on_split_done(self.s, split, OK)
        raise AssertionError("the world never settled")


def check_invariants(s):
    for exp in s.scalars(select(Experiment)):
        statuses = {b.status.value for b in exp.blocks}
        if exp.status in ("D",):
            assert statuses == {"C"}, (exp, statuses)
        if exp.status in ("D", "F", "P"):
            assert not statuses & {"N", "P"} or exp.status == "P" and statuses <= {"N", "C", "L", "F"}
        for b in exp.blocks:
            if b.status == "C":
                assert all(c.status == "C" for c in b.outputs), b
            if b.job is not None:
                assert b.status in ("N", "P", "F"), (b, b.job)
        if exp.status in ("S", "R"):
            assert statuses & {"N", "P"}, (exp, statuses)  # else it would have ended
    for mirror in s.scalars(select(Job).where(Job.mirror.is_(True))):
        original = s.scalar(select(Job).where(
            Job.key == mirror.key, Job.mirror.is_(False),
            Job.splits.any(JobSplit.status.in_(("N", "P", "K")))))
        assert original is not None or mirror.block.experiment.status == "C", mirror
    for split in s.scalars(select(JobSplit).where(JobSplit.status == "K")):
        assert split.submission_tag is not None
    for cached in s.scalars(select(CachedFile).where(CachedFile.status == "P")):
        assert any(b.status == "P" for b in cached.blocks), cached


@pytest.mark.parametrize("seed", range(5))
def test_random_event_orders(session, seed):
    rng = random.Random(seed)
    upsert_queue(session, name="big", partition="debug", memory_limit=1000, time_limit=10,
                 max_slots_per_user=3, environments=[("python", "3.11")])
    session.commit()
    for declaration in _declarations():
        declare(session, declaration)
    world = World(session, rng)
    for step in range(200):
        world.event()
        if step % 10 == 0:
            check_invariants(session)
    world.drain()
    check_invariants(session)
    for exp in session.scalars(select(Experiment)):
        assert exp.status in ("D", "F", "P"), exp
        if exp.status != "P":
            assert all(b.job is None for b in exp.blocks)
    assert session.scalar(select(Job).where(Job.splits.any(JobSplit.status.in_(("P", "K"))))) is None


def test_three_sessions_at_once(session, factory):
    """A poller, a scheduler and a user, each in its own session and thread, at random."""
    import threading

    upsert_queue(session, name="big", partition="debug", memory_limit=1000, time_limit=10,
                 max_slots_per_user=3, environments=[("python", "3.11")])
    session.commit()
    for declaration in _declarations():
        declare(session, declaration)
    session.close()
    errors: list[BaseException] = []

    def actor(seed: int) -> None:
        with factory() as own:
            world = World(own, random.Random(seed))
            try:
                for _ in range(60):
                    world.event()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

    threads = [threading.Thread(target=actor, args=(seed,)) for seed in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    with factory() as check:
        check_invariants(check)
        World(check, random.Random(0)).drain()
        check_invariants(check)
        for exp in check.scalars(select(Experiment)):
            assert exp.status in ("D", "F", "P"), exp
