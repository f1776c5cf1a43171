"""The Slurm client on recorded answers: what it asks Slurm, with which timeout, and how it reads the reply."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fakes import (
    EMPTY,
    LOST,
    NOT_SUBMITTED,
    SACCT_DOWN,
    SQUEUE_DOWN,
    TIMEOUT,
    TRANSIENT,
    Answer,
    Recording,
    ReplayRunner,
    data_file,
)

from bridge.config import SlurmTimeouts
from bridge.errors import CommandError
from bridge.slurm_client import OutcomeUnknown, SlurmClient, SubmissionRefused

TIMEOUTS = SlurmTimeouts(submit=1.0, find=2.0, status=3.0, cancel=4.0, accounting=5.0, info=6.0)
JOB, TAG = 777, "bb-test-tag"


class Element:
    """A submitted split as status() sees it."""

    def __init__(self, element: str, submitted: datetime | None = None):
        self.slurm_element_id = element
        self.slurm_job_id = element.partition("_")[0]
        self.submit_time = submitted


def client(fake: ReplayRunner) -> SlurmClient:
    return SlurmClient(fake, TIMEOUTS)


def recorded(scenario: str, name: str) -> Answer:
    return Recording.load(scenario).answer(name, JOB, TAG)


def test_each_kind_of_call_has_its_own_timeout():
    fake = ReplayRunner().then("sbatch", recorded("sbatch", "sbatch")).then("find_squeue", Answer("1\n"))
    fake.then("squeue", recorded("running", "squeue")).then("scancel", EMPTY)
    fake.then("sacct", recorded("completed", "sacct")).then("sinfo", data_file("sinfo_nodes.txt"))
    c = client(fake)
    c.submit("#!/bin/bash\n")
    c.find(TAG)
    c.status([Element(f"{JOB}_0")])
    c.cancel([f"{JOB}_0"])
    c.accounting([JOB], datetime(2026, 12, 1))
    c.nodes()
    assert fake.timeouts == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_submit_reads_the_array_id_and_classifies_errors():
    fake = ReplayRunner().then("sbatch", recorded("sbatch", "sbatch"), NOT_SUBMITTED, TRANSIENT, TIMEOUT, LOST,
                               recorded("sbatch", "sbatch_bad_partition"))
    c = client(fake)
    assert c.submit("script") == JOB and fake.stdins[0] == "script"
    with pytest.raises(CommandError) as never_sent:  # never reached slurmctld: safe to run again
        c.submit("script")
    assert not isinstance(never_sent.value, (SubmissionRefused, OutcomeUnknown))
    for _ in range(3):  # a socket timeout, no answer in time, a lost connection: Slurm may have it
        with pytest.raises(OutcomeUnknown):
            c.submit("script")
    with pytest.raises(SubmissionRefused, match="Invalid partition name specified"):
        c.submit("script")


def test_find_asks_sacct_only_when_squeue_does_not_know_the_tag():
    fake = ReplayRunner().then("find_squeue", recorded("find", "find_squeue"))
    assert client(fake).find(TAG) == JOB and fake.count("find_sacct") == 0
    fake.then("find_squeue", recorded("find", "find_squeue_unknown")).then("find_sacct", recorded("find", "find_sacct"))
    assert client(fake).find(TAG, age=60) == JOB
    fake.then("find_squeue", recorded("find", "find_squeue_unknown"))
    fake.then("find_sacct", recorded("find", "find_sacct_unknown"))
    assert client(fake).find(TAG) is None  # both answered, neither knows it: surely not there


@pytest.mark.parametrize("squeue, sacct", [(EMPTY, SACCT_DOWN), (SQUEUE_DOWN, EMPTY), (TIMEOUT, EMPTY),
                                           (SQUEUE_DOWN, SACCT_DOWN)])
def test_find_is_never_none_when_a_source_could_not_answer(squeue, sacct):
    fake = ReplayRunner().then("find_squeue", squeue).then("find_sacct", sacct)
    with pytest.raises(CommandError):
        client(fake).find(TAG)


def test_find_trusts_sacct_when_squeue_fails():
    fake = ReplayRunner().then("find_squeue", SQUEUE_DOWN).then("find_sacct", recorded("find", "find_sacct"))
    assert client(fake).find(TAG) == JOB


def test_a_lost_or_failed_scancel_is_logged_not_raised(caplog):
    fake = ReplayRunner().then("scancel", TIMEOUT, Answer(returncode=1, stderr="scancel: error: boom\n"))
    assert client(fake).cancel([f"{JOB}_0"]) == [f"{JOB}_0"]
    assert client(fake).cancel_by_name([TAG]) == [TAG]
    assert fake.of("scancel")[1] == ("scancel", "--name", TAG)
    assert sum("asked again next cycle" in r.getMessage() for r in caplog.records) == 2


def test_cancel_is_one_sorted_deduplicated_scancel_chunked_past_a_thousand():
    fake = ReplayRunner().always("scancel", EMPTY)
    ids = [f"{JOB}_{i}" for i in range(2500)]
    assert client(fake).cancel(ids + ids[:10]) == sorted(ids)
    assert [len(argv) - 1 for argv in fake.of("scancel")] == [1000, 1000, 500]
    assert client(fake).cancel([]) == [] and fake.count("scancel") == 3


def test_status_asks_sacct_for_what_squeue_forgot_bounded_by_the_oldest_submit():
    fake = ReplayRunner().then("squeue",
                               Answer(returncode=1, stderr="slurm_load_jobs error: Invalid job id specified\n"))
    fake.then("sacct", recorded("completed", "sacct"))
    view = client(fake).status([Element(f"{JOB}_0", datetime(2026, 12, 1, 12, 0)),
                                Element(f"{JOB}_1", datetime(2026, 12, 1, 12, 30))])
    assert view.squeue_error is None and view.sacct_error is None  # every array forgotten: not an error
    assert view.from_sacct == {f"{JOB}_0", f"{JOB}_1"} and view.records[f"{JOB}_1"].state == "COMPLETED"
    (argv,) = fake.of("sacct")
    assert argv[argv.index("-j") + 1] == str(JOB)
    oldest = datetime(2026, 12, 1, 12, 0)  # naive UTC, as stored; sacct runs with TZ=UTC
    assert datetime.fromisoformat(argv[argv.index("-S") + 1]) == oldest - timedelta(minutes=5)


def test_status_needs_no_sacct_when_squeue_knows_every_element():
    fake = ReplayRunner().then("squeue", recorded("pending", "squeue"))
    view = client(fake).status([Element(f"{JOB}_{i}") for i in range(3)])
    assert view.pending == {f"{JOB}_0", f"{JOB}_1", f"{JOB}_2"} and fake.count("sacct") == 0
    assert (view.squeue_calls, view.sacct_calls) == (1, 0)


def test_status_keeps_each_sources_error():
    fake = ReplayRunner().then("squeue", TIMEOUT).then("sacct", SACCT_DOWN)
    view = client(fake).status([Element(f"{JOB}_0")])
    assert "timed out" in view.squeue_error and "Problem talking to the database" in view.sacct_error
    assert view.records == {}


def test_cluster_facts_from_recorded_scontrol_and_sinfo():
    fake = ReplayRunner().then("scontrol", data_file("scontrol_show_partition.txt"))
    fake.then("sinfo", data_file("sinfo_nodes.txt")).always("scontrol", data_file("scontrol_show_config.txt"))
    fake.then("sbatch_version", Answer("slurm-wlm 22.05.8\n"))
    c = client(fake)
    assert [p["PartitionName"] for p in c.partitions()] == ["cpu", "long", "debug"]
    assert sorted(n.name for n in c.nodes()) == ["n1", "n2"]
    assert c.max_array_size() == c.max_array_size() == 1001 and fake.count("scontrol") == 2  # read once
    assert c.version() == "22.05.8"
