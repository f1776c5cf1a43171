"""assign_split_to_worker records the Slurm node of a split and links its Worker row."""

from __future__ import annotations

from dbsupport import declare, splits_of, two_blocks

from bridge.helpers import assign_split_to_worker, split_new_jobs
from bridge.models import JobSplit, Worker


def test_records_the_node_by_name_or_worker_and_is_a_no_op_for_a_gone_split(session):
    session.add_all([Worker(name="n1", cores=4, memory=4000), Worker(name="n2", cores=4, memory=4000)])
    session.commit()
    experiment = declare(session, two_blocks())
    split_new_jobs(session)
    split = splits_of(session, experiment, "first")[0]

    assert assign_split_to_worker(session, split.id, "n2")
    session.expire_all()
    row = session.get(JobSplit, split.id)
    assert (row.slurm_node, row.worker.name) == ("n2", "n2")

    assert assign_split_to_worker(session, split.id, session.query(Worker).filter_by(name="n1").one())
    session.expire_all()
    assert session.get(JobSplit, split.id).worker.name == "n1"

    assert assign_split_to_worker(session, 999999, "n1") is False
