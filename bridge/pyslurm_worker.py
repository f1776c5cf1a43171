"""The process that makes pyslurm's libslurm calls for the daemon: `python -m bridge.pyslurm_worker`.

libslurm is C: a call that hangs (slurmctld gone mid-RPC) or crashes the
process (a pyslurm built for another libslurm) must never take the daemon with
it. So the daemon never imports pyslurm; it sends requests to this long-lived
child over a pipe (bridge.pyslurm_process), which kills it when a call
overruns its timeout and starts a new one on the next call.

Protocol: length-prefixed pickles on stdin/stdout. Request `(op, args)`;
reply `("ok", value)` or `("error", kind, message)`, kind one of "rpc"
(slurmctld or slurmdbd refused: pyslurm.RPCError, the message is
slurm_strerror's), "value" (pyslurm refused the arguments before any RPC),
"import" (pyslurm cannot be imported) or "other". Answers are plain text in
squeue's and sacct's formats (bridge.pyslurm_rows), parsed by the client
with the CLI client's parsers.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, BinaryIO

from bridge.pyslurm_rows import JOB_KEYS, sacct_line, squeue_text

HEADER = struct.Struct("!Q")
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                   "BOOT_FAIL", "DEADLINE"})


def write_frame(stream: BinaryIO, value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> Any:
    """One frame; EOFError when the other end closed the pipe."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("pipe closed")
    (size,) = HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("pipe closed mid-frame")
    return pickle.loads(data)


def _pyslurm():
    import pyslurm  # type: ignore[import-not-found]  # only this process loads libslurm

    return pyslurm


def hello() -> dict[str, str]:
    """pyslurm's version, the libslurm it was built for, and the Slurm slurmctld runs."""
    pyslurm = _pyslurm()
    config = pyslurm.config().get()
    return {"pyslurm": pyslurm.__version__, "libslurm": ".".join(map(str, pyslurm.slurm_api_version())),
            "slurm": str(config.get("version", "")), "cluster": str(config.get("cluster_name", ""))}


def submit(script: str, description: dict[str, Any]) -> int:
    """slurm_submit_batch_job of a description built only from the directives (bridge.pyslurm_rows)."""
    return int(_pyslurm().JobSubmitDescription(script=script, **description).submit())


def _jobs():
    """slurmctld's job table: one slurm_load_jobs (pyslurm.Job objects read their fields lazily)."""
    return _pyslurm().Jobs.load().values()


def _row(job) -> dict[str, Any]:
    return {**{key: getattr(job, key) for key in JOB_KEYS}, "allocated_nodes": job.allocated_nodes}


def squeue(array_ids: Sequence[int]) -> str:
    """The job table's records of the arrays, as squeue's lines (only theirs are read field by field)."""
    wanted = set(array_ids)
    return squeue_text((_row(job) for job in _jobs() if (job.array_id or job.id) in wanted), wanted)


def names(tag: str) -> list[int]:
    """The array ids slurmctld knows under a job name."""
    return sorted({job.array_id or job.id for job in _jobs() if job.name == tag})


def accounting(start: datetime, end: datetime | None, array_ids: Sequence[int], tags: Sequence[str]) -> str:
    """slurmdbd's jobs (pyslurm.db, like `sacct -X`) of the arrays or names in the window, as sacct lines."""
    db = _pyslurm().db
    utc = {"start_time": start.replace(tzinfo=timezone.utc)}
    if end is not None:
        utc["end_time"] = end.replace(tzinfo=timezone.utc)
    wanted = {"ids": list(array_ids)} if array_ids else {}
    if tags:
        wanted["names"] = list(tags)
    jobs = db.Jobs.load(db.JobFilter(**wanted, **utc))
    lines = []
    for job in jobs.values():
        if array_ids and (job.array_id or job.id) not in set(array_ids):
            continue
        lines.append(sacct_line({name: getattr(job, name) for name in (*JOB_KEYS, "nodelist", "comment")}))
    return "".join(line + "\n" for line in lines)


def cancel(job_ids: Sequence[str]) -> dict[str, str]:
    """slurm_kill_job2(id, SIGKILL) for each element or array id, as scancel; {id: error} for those refused."""
    pyslurm, errors = _pyslurm(), {}
    for job_id in job_ids:
        try:
            pyslurm.slurm_kill_job2(job_id.encode(), signal.SIGKILL, 0)
        except Exception as e:  # noqa: BLE001  (pyslurm raises ValueError with slurm_strerror's text)
            errors[job_id] = str(e)
    return errors


def cancel_by_name(tag: str) -> dict[str, str]:
    """Cancel every unfinished job named `tag` (scancel --name)."""
    return cancel(sorted({str(job.array_id or job.id) for job in _jobs()
                          if job.name == tag and (job.state or "") not in FINAL}))


def config() -> dict[str, str]:
    """The few `scontrol show config` keys the bridge reads, under scontrol's names."""
    values = _pyslurm().config().get()
    return {"MaxArraySize": str(values.get("max_array_sz", "")), "ClusterName": str(values.get("cluster_name", "")),
            "SLURM_VERSION": str(values.get("version", ""))}


OPS: dict[str, Callable[..., Any]] = {
    "hello": hello, "submit": submit, "squeue": squeue, "names": names, "accounting": accounting,
    "cancel": cancel, "cancel_by_name": cancel_by_name, "config": config,
}


def answer(op: str, args: Sequence[Any]) -> tuple:
    """The reply to one request; never raises."""
    try:
        return ("ok", OPS[op](*args))
    except ImportError as e:
        return ("error", "import", f"{type(e).__name__}: {e}")
    except ValueError as e:
        return ("error", "value", str(e))
    except Exception as e:  # noqa: BLE001  pyslurm.RPCError and whatever else: reported, the process lives on
        if type(e).__name__ == "RPCError":
            return ("error", "rpc", str(getattr(e, "msg", None) or e))
        return ("error", "other", f"{type(e).__name__}: {e}")


def main() -> None:
    """Serve requests until stdin closes."""
    stdin = sys.stdin.buffer
    # The frames get a descriptor of their own; fd 1 and sys.stdout become stderr, so nothing libslurm's
    # C code or pyslurm prints can corrupt them.
    stdout = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    while True:
        try:
            op, args = read_frame(stdin)
        except EOFError:
            return
        write_frame(stdout, answer(op, args))


if __name__ == "__main__":
    main()
