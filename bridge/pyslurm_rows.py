"""pyslurm's answers as the lines squeue and sacct print, and the job description from the directives.

Pure functions, so the pyslurm client reuses the CLI client's parsers and state
mapping (bridge.squeue, bridge.sacct) instead of a second copy: slurmctld's job
table becomes `bridge.slurm.squeue_argv`'s lines, slurmdbd's jobs become
`sacct -X --parsable2` lines, and the poller cannot tell the clients apart.

pyslurm 22.5.3 quirks handled here (its source, vendor/pyslurm-22.5.3.tar.gz):
- `Job.array_task_id` and `db.Job.array_task_id` are None for task 0 (the uint
  parser treats 0 as "no value"): an array record that is not a pending range
  is an element, and None is task 0 (`element_id`).
- the old `job().get()` dict's `exit_code` keeps the signal of `derived_ec`
  (the same local variable, pyslurm.pyx): a COMPLETED element read "0:9". The
  new `Jobs.load()` is used, with `exit_code` and `exit_code_signal` apart.
- `JobSubmitDescription.time_limit` passes a digit string through unconverted
  (utils/ctime.pyx, timestr_to_mins) and the C field needs an int: digits
  become ints.
- `JobSubmitDescription` never reads `#SBATCH` lines (only
  `load_sbatch_options()` does, and that needs a file); the old
  `job().submit_batch_job` sets `requeue` only when truthy, so `--no-requeue`
  would be lost. The description is built from the directive mapping
  (bridge.render.sbatch_directives) with `is_requeueable=False`, and a script
  whose `#SBATCH` lines say anything else is refused (`unmapped_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from bridge.sbatch_options import parse_directive  # jinja-free: the pyslurm worker process loads no jinja2
from bridge.slurm import SACCT_FIELDS, SQUEUE_FIELDS

SBATCH_PREFIX = "#SBATCH"
# sbatch long option -> JobSubmitDescription attribute (pyslurm 22.5.3, core/job/submission.pyx).
# pyslurm's own table (core/job/sbatch_opts.pyx) maps --partition to a "partition" attribute that
# does not exist (the attribute is "partitions"): this one is checked against the class.
VALUED = {
    "account": "account", "array": "array", "begin": "begin_time", "chdir": "working_directory",
    "comment": "comment", "constraint": "constraints", "cpus-per-task": "cpus_per_task",
    "error": "standard_error", "exclude": "excluded_nodes", "gres": "gres_per_node", "job-name": "name",
    "licenses": "licenses", "mail-type": "mail_types", "mail-user": "mail_user", "mem": "memory_per_node",
    "mem-per-cpu": "memory_per_cpu", "nice": "nice", "nodelist": "required_nodes", "nodes": "nodes",
    "ntasks": "ntasks", "output": "standard_output", "partition": "partitions", "qos": "qos",
    "reservation": "reservations", "time": "time_limit", "tmp": "temporary_disk_per_node", "wckey": "wckey",
}
FLAGS: dict[str, tuple[str, Any]] = {
    "no-requeue": ("is_requeueable", False),  # requeue = 0: the reason this table exists (see above)
    "requeue": ("is_requeueable", True),
    "exclusive": ("resource_sharing", "no"),
    "contiguous": ("requires_contiguous_nodes", True),
    "hold": ("priority", 0),
}
INTEGERS = frozenset({"cpus_per_task", "nice", "ntasks", "time_limit"})


class UnsupportedDirective(ValueError):
    """A directive the pyslurm client cannot put into a job description."""


def job_description(directives: Mapping[str, str | None]) -> dict[str, Any]:
    """JobSubmitDescription keyword arguments for the directive mapping (name -> value, None for a flag).

    UnsupportedDirective names an option this table does not know (runner = "local" takes any).
    """
    kwargs: dict[str, Any] = {}
    for name, value in directives.items():
        if value is None and name in FLAGS:
            attribute, flag = FLAGS[name]
            kwargs[attribute] = flag
        elif value is not None and name in VALUED:
            attribute = VALUED[name]
            kwargs[attribute] = int(value) if attribute in INTEGERS and value.isdigit() else value
        else:
            known = sorted(VALUED) + sorted(f"{f} (a flag)" for f in FLAGS)
            raise UnsupportedDirective(
                f"--{name}{'' if value is None else '=' + value} cannot be given to pyslurm's job description "
                f"(supported: {', '.join(known)}); use runner = \"local\" or \"ssh\" for it")
    return kwargs


def script_directives(script: str) -> dict[str, str | None]:
    """The `#SBATCH --name[=value]` lines at the top of a script (sbatch stops at the first command)."""
    found: dict[str, str | None] = {}
    for line in script.splitlines()[1:]:
        text = line.strip()
        if text.startswith(SBATCH_PREFIX):
            name, value = parse_directive(text[len(SBATCH_PREFIX):].strip())
            found[name] = value
        elif text and not text.startswith("#"):
            break
    return found


def unmapped_lines(script: str, directives: Mapping[str, str | None]) -> list[str]:
    """`#SBATCH` options of the script that the directive mapping does not carry (pyslurm would drop them)."""
    return [f"--{name}" + ("" if value is None else f"={value}")
            for name, value in script_directives(script).items() if directives.get(name, ...) != value]


def slurm_time(epoch: int | None, none: str) -> str:
    """An epoch as squeue and sacct print it under TZ=UTC; `none` for 0/None (no such time)."""
    if not epoch:
        return none
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def element_id(job: Mapping[str, Any]) -> str:
    """`J_T`, `J_[range]` (pending elements) or `J`, as squeue and sacct name a record.

    pyslurm 22.5.3 reads array_task_id 0 as None (both Jobs.load and db.Jobs.load):
    an array record that is not a pending range is an element, and None is task 0.
    """
    array_id, task, waiting = job.get("array_id"), job.get("array_task_id"), job.get("array_tasks_waiting")
    if array_id and waiting:
        return f"{array_id}_[{waiting}]"
    if array_id:
        return f"{array_id}_{task if task is not None else 0}"
    return str(job["id"])


JOB_KEYS = ("id", "array_id", "array_task_id", "array_tasks_waiting", "name", "partition", "state",
            "exit_code", "exit_code_signal", "submit_time", "start_time", "end_time")


def squeue_line(job: Mapping[str, Any]) -> str:
    """One slurmctld job (pyslurm.Job's JOB_KEYS and allocated_nodes) as a `bridge.slurm.squeue_argv` line.

    squeue's exit_code is the raw wait status (bridge.squeue.wait_status reads it back).
    """
    signal = int(job.get("exit_code_signal") or 0)
    values = {
        "JobArrayID": element_id(job), "JobID": str(job["id"]), "Partition": job.get("partition") or "",
        "State": job.get("state") or "", "NodeList": job.get("allocated_nodes") or "",
        "SubmitTime": slurm_time(job.get("submit_time"), "N/A"),
        "StartTime": slurm_time(job.get("start_time"), "N/A"),
        "EndTime": slurm_time(job.get("end_time"), "N/A"),
        "exit_code": str(signal if signal else int(job.get("exit_code") or 0) << 8), "Name": job.get("name") or "",
    }
    return "|".join(values[name] for name, _ in SQUEUE_FIELDS) + "|"


def squeue_text(jobs: Iterable[Mapping[str, Any]], array_ids: Iterable[int]) -> str:
    """The job table's records of the arrays (a plain job by its own id), as squeue would list them."""
    wanted = set(array_ids)
    return "".join(squeue_line(job) + "\n" for job in jobs if (job.get("array_id") or job["id"]) in wanted)


def sacct_line(job: Mapping[str, Any]) -> str:
    """One slurmdbd job (`pyslurm.db.Job.to_dict()`) as a `sacct -X --parsable2` line of SACCT_FIELDS."""
    values = {
        "JobID": element_id(job), "JobIDRaw": str(job["id"]), "JobName": job.get("name") or "",
        "Partition": job.get("partition") or "", "State": job.get("state") or "",
        "ExitCode": f"{job.get('exit_code') or 0}:{job.get('exit_code_signal') or 0}",
        "NodeList": job.get("nodelist") or "None assigned",
        "Submit": slurm_time(job.get("submit_time"), "Unknown"),
        "Start": slurm_time(job.get("start_time"), "Unknown"),
        "End": slurm_time(job.get("end_time"), "Unknown"),
        "Comment": job.get("comment") or "",
    }
    return "|".join(values[name] for name in SACCT_FIELDS)
