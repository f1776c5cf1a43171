"""One statement per array (bridge.submission_rows): claims never overlap, a record touches its tag only."""

from __future__ import annotations

import threading

from dbsupport import block, declare
from sqlalchemy import select

from bridge import helpers
from bridge.models import JobSplit
from bridge.submission_rows import claim_splits, record_array, release_array


def _split_ids(session, name: str = "e", slots: int = 40) -> list[int]:
    declare(session, {"name": name, "author": "a", "blocks": {"b": block(
        slots=slots, queue="big", inputs={"in": {"dataset": "numbers", "size": slots}})}})
    return [s.id for s in helpers.split_new_jobs(session)]


def _tags(factory) -> dict[int, str | None]:
    with factory() as s:
        return {pk: tag for pk, tag in s.execute(select(JobSplit.id, JobSplit.submission_tag))}


def _race(factory, claims: dict[str, list[int]]) -> dict[str, list[int]]:
    """Each tag claims its ids in its own session and thread, all released at once; what each got."""
    barrier = threading.Barrier(len(claims))
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def claim(tag: str, ids: list[int]) -> None:
        try:
            with factory() as s:
                barrier.wait()
                got[tag] = [c.id for c in claim_splits(s, ids, tag)]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=claim, args=item) for item in claims.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return got


def test_claimers_racing_for_the_same_splits_never_claim_one_twice(session, factory):
    """Two submitters read the same candidates and claim at once: each split goes to exactly one tag."""
    for round_ in range(3):
        ids = _split_ids(session, f"e{round_}")
        session.close()
        got = _race(factory, {"t1": ids[:30], "t2": ids[10:], "t3": ids[::2]})
        claimed = [i for tag_ids in got.values() for i in tag_ids]
        assert sorted(claimed) == sorted(ids)  # every split once: no overlap, none lost
        tags = _tags(factory)
        assert all(tags[i] == tag for tag, tag_ids in got.items() for i in tag_ids)


def test_a_claim_made_from_stale_candidates_claims_nothing_already_taken(session, factory):
    ids = _split_ids(session)
    with factory() as other:  # another submitter, its candidates read before ours claimed
        assert [c.id for c in claim_splits(session, ids[:25], "ours")] == ids[:25]
        later = claim_splits(other, ids, "theirs")
    assert [c.id for c in later] == ids[25:]
    assert [(c.split_index, c.start_index, c.end_index) for c in later][:2] == [(25, 25, 25), (26, 26, 26)]


def test_the_record_touches_only_the_splits_of_its_tag(session, factory):
    ids = _split_ids(session, slots=6)
    claim_splits(session, ids[:3], "first")
    claim_splits(session, ids[3:5], "second")  # ids[5] stays a candidate, never claimed

    assert record_array(session, "first", 900) == ids[:3]
    assert record_array(session, "second", 901, offset=3) == ids[3:5]
    assert record_array(session, "first", 902) == []  # recorded already: the first array id stays

    with factory() as s:
        rows = s.execute(select(JobSplit.id, JobSplit.slurm_job_id, JobSplit.slurm_element_id)
                         .order_by(JobSplit.split_index)).all()
    assert [tuple(r) for r in rows] == [
        (ids[0], "900", "900_0"), (ids[1], "900", "900_1"), (ids[2], "900", "900_2"),
        (ids[3], "901", "901_0"), (ids[4], "901", "901_1"), (ids[5], None, None)]


def test_a_release_gives_back_only_its_tags_unrecorded_splits(session, factory):
    ids = _split_ids(session, slots=4)
    claim_splits(session, ids[:2], "lost")
    claim_splits(session, ids[2:], "kept")
    record_array(session, "kept", 77)
    assert release_array(session, "lost") == 2
    assert release_array(session, "kept") == 0  # recorded: Slurm has it, nothing to give back
    assert _tags(factory) == {ids[0]: None, ids[1]: None, ids[2]: "kept", ids[3]: "kept"}
