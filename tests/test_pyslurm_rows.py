"""bridge.pyslurm_rows: pyslurm's records read back by the CLI client's own parsers, and the job description."""

from __future__ import annotations

import pytest

from bridge.pyslurm_rows import UnsupportedDirective, job_description, sacct_line, squeue_text, unmapped_lines
from bridge.render import ArraySpec, sbatch_directives
from bridge.sacct import parse_sacct
from bridge.squeue import squeue_view

EPOCH = 1796166589  # 2026-12-01T23:09:49 UTC


def job(**values):
    base = {"id": 7, "array_id": 7, "array_task_id": None, "array_tasks_waiting": None, "name": "tag-1",
            "partition": "debug", "state": "RUNNING", "exit_code": 0, "exit_code_signal": 0,
            "submit_time": EPOCH, "start_time": EPOCH + 1, "end_time": None, "allocated_nodes": "n1"}
    return {**base, **values}


def spec(**values) -> ArraySpec:
    base = dict(job_name="tag-1", submission_tag="tag-1", partition="debug", cpus_per_task=2, mem_mb=300,
                time_minutes=10, array_indices=(0, 1, 2), output="/s/o-%A_%a", error="/s/e-%A_%a",
                python="python3", element_runner="m", spool_dir="/s", throttle=2)
    return ArraySpec(**{**base, **values})


def test_the_job_table_reads_as_squeue_lines_task_zero_pending_ranges_and_exit_codes():
    jobs = [
        job(id=8, array_task_id=None),  # pyslurm's None for task 0
        job(id=9, array_task_id=1, state="FAILED", exit_code=3, end_time=EPOCH + 5),
        job(id=10, array_task_id=2, state="FAILED", exit_code_signal=9, end_time=EPOCH + 5),
        job(id=7, array_tasks_waiting="3-5", state="PENDING", start_time=None, allocated_nodes=None),
        job(id=99, array_id=98, array_task_id=1, name="someone-else"),
    ]
    view = squeue_view(squeue_text(jobs, [7]))
    assert sorted(view.records) == ["7_0", "7_1", "7_2"]
    assert sorted(view.pending) == ["7_3", "7_4", "7_5"]
    assert (view.records["7_1"].state, view.records["7_1"].exit_code) == ("FAILED", 3)
    assert (view.records["7_2"].exit_code, view.records["7_2"].signal) == (0, 9)
    first = view.records["7_0"]
    assert (first.raw_id, first.name, first.partition, first.node_list) == ("8", "tag-1", "debug", "n1")
    assert first.start.isoformat() == "2026-12-01T23:09:50" and first.end is None


def test_a_cancelled_range_gives_each_never_started_element_a_record():
    view = squeue_view(squeue_text([job(array_tasks_waiting="0-2", state="CANCELLED", start_time=None)], [7]))
    assert sorted(view.records) == ["7_0", "7_1", "7_2"] and not view.pending
    assert {r.state for r in view.records.values()} == {"CANCELLED"}


def test_slurmdbd_jobs_read_as_sacct_lines():
    rows = [job(id=8, state="COMPLETED", end_time=EPOCH + 3, nodelist="n1", comment="beat x"),
            job(id=9, array_task_id=4, state="TIMEOUT", exit_code_signal=15, nodelist="n2", comment=None)]
    records = parse_sacct("".join(sacct_line(r) + "\n" for r in rows))
    assert [(r.job_id, r.state, r.exit_code, r.signal, r.node_list, r.comment) for r in records] == [
        ("7_0", "COMPLETED", 0, 0, "n1", "beat x"), ("7_4", "TIMEOUT", 0, 15, "n2", "")]


def test_the_description_comes_from_the_directives_with_requeue_off():
    directives = sbatch_directives(spec(account="acc", qos="q", extra_directives=("--exclude=n2",)))
    assert job_description(directives) == {
        "account": "acc", "array": "0-2%2", "comment": "tag-1", "cpus_per_task": 2, "standard_error": "/s/e-%A_%a",
        "excluded_nodes": "n2", "name": "tag-1", "memory_per_node": "300M", "is_requeueable": False,
        "standard_output": "/s/o-%A_%a", "partitions": "debug", "qos": "q", "time_limit": 10,
    }


def test_an_option_the_description_cannot_carry_is_named():
    with pytest.raises(UnsupportedDirective) as e:
        job_description(sbatch_directives(spec(extra_directives=("--gpu-freq=high",))))
    assert "--gpu-freq=high" in str(e.value) and 'runner = "local"' in str(e.value)


def test_script_lines_the_directives_do_not_carry_are_found():
    directives = {"job-name": "tag-1", "no-requeue": None, "time": "10"}
    script = "#!/bin/bash\n#SBATCH --job-name=tag-1\n#SBATCH --no-requeue\n#SBATCH --time=10\necho\n"
    assert unmapped_lines(script, directives) == []
    extra = script.replace("#SBATCH --time=10\n", "#SBATCH --time=20\n#SBATCH --requeue\n")
    assert unmapped_lines(extra, directives) == ["--time=20", "--requeue"]
    assert unmapped_lines(script + "#SBATCH --requeue\n", directives) == []  # after a command: sbatch ignores it
