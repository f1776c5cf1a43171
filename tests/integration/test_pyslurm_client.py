"""The pyslurm client against the real cluster: the same job as sbatch makes, and a worker that cannot hang us.

Each array here is submitted held (`--hold`), so nothing runs: slurmctld's record
is compared, then the arrays are cancelled.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from bridge_env import make_env

from bridge.errors import CommandError, CommandTimeout
from bridge.render import ArraySpec, render_array_script, sbatch_directives
from bridge.slurm import parse_key_values
from bridge.slurm_client import SlurmClient, SubmitLimitReached

COMPARED = ("Requeue", "Partition", "TimeLimit", "MinMemoryNode", "CPUs/Task", "ArrayTaskId", "ArrayTaskThrottle",
            "Account", "QOS", "ExcNodeList", "BatchFlag", "Priority")


def _held_array(tag: str, tmp_path) -> tuple[str, dict[str, str | None]]:
    spec = ArraySpec(job_name=tag, submission_tag=tag, partition="debug", cpus_per_task=2, mem_mb=120,
                     time_minutes=3, array_indices=(0, 1, 2, 5), throttle=2, output=f"{tmp_path}/o-%A_%a",
                     error=f"{tmp_path}/e-%A_%a", python="python3", element_runner="m", spool_dir=str(tmp_path),
                     comment="pyslurm compare", extra_directives=("--hold", "--exclude=n2"))
    return render_array_script(spec), sbatch_directives(spec)


def _show(slurm, job_id: int) -> dict[str, str]:
    text = slurm.run(["scontrol", "-o", "show", "job", str(job_id)], timeout=30).check().stdout
    return parse_key_values(text.splitlines()[0])


@pytest.fixture
def pyslurm_env(tmp_path, slurm_cluster, slurm):
    env = make_env(tmp_path, slurm_cluster, slurm, client="pyslurm")
    yield env
    env.backend.client.close()


def test_the_same_array_from_both_clients_is_the_same_job_to_slurmctld_with_requeue_off(
        tmp_path, slurm, pyslurm_env):
    """pyslurm ignores #SBATCH lines and its old API never sets requeue=0: the description comes from the
    directives, and slurmctld's record says so (this cluster's JobRequeue=1 would make it Requeue=1)."""
    run = uuid.uuid4().hex[:8]
    cli, pys = SlurmClient(slurm), pyslurm_env.backend.client
    ids = {}
    try:
        for name, client in (("cli", cli), ("pyslurm", pys)):
            tag = f"cmp-{name}-{run}"
            ids[name] = client.submit(*_held_array(tag, tmp_path))
            assert client.find(tag) == ids[name]
        jobs = {name: _show(slurm, job_id) for name, job_id in ids.items()}
    finally:
        pys.cancel([str(i) for i in ids.values()])
    assert jobs["pyslurm"]["Requeue"] == "0"
    assert {k: jobs["pyslurm"].get(k) for k in COMPARED} == {k: jobs["cli"].get(k) for k in COMPARED}
    assert jobs["pyslurm"]["ArrayTaskId"] == "0-2,5%2" and jobs["pyslurm"]["ExcNodeList"] == "n2"
    assert (jobs["cli"]["JobName"], jobs["pyslurm"]["JobName"]) == (f"cmp-cli-{run}", f"cmp-pyslurm-{run}")
    assert jobs["pyslurm"]["Comment"] == jobs["cli"]["Comment"].replace("cmp-cli-", "cmp-pyslurm-")
    assert jobs["pyslurm"]["StdOut"] == jobs["cli"]["StdOut"].replace(str(ids["cli"]), str(ids["pyslurm"]))


@pytest.mark.exclusive("adds an account with MaxSubmitJobs=1 to slurmdbd (sacctmgr) and removes it")
def test_a_submit_limit_is_back_pressure_through_both_clients(tmp_path, slurm, pyslurm_env):
    """libslurm logs the limit's name and raises only "Job violates accounting/QOS policy": the pyslurm
    client reads the logged name as sbatch prints it, so a full association is waited on, not failed."""
    account = f"bbp{uuid.uuid4().hex[:8]}"
    slurm.run(["sacctmgr", "-i", "add", "account", account, "Description=pyslurm limit test"], timeout=30).check()
    try:
        slurm.run(["sacctmgr", "-i", "add", "user", "root", f"Account={account}", "MaxSubmitJobs=1"],
                  timeout=30).check()
        refused = {}
        for name, client in (("cli", SlurmClient(slurm)), ("pyslurm", pyslurm_env.backend.client)):
            script, directives = _held_array(f"limit-{name}-{uuid.uuid4().hex[:8]}", tmp_path)
            directives = {**directives, "account": account}
            script = script.replace("#SBATCH --array=", f"#SBATCH --account={account}\n#SBATCH --array=")
            with pytest.raises(SubmitLimitReached) as e:
                client.submit(script, directives)
            refused[name] = e.value.limit
        assert refused == {"cli": "AssocMaxSubmitJobLimit", "pyslurm": "AssocMaxSubmitJobLimit"}
    finally:
        slurm.run(["scancel", f"--account={account}"], timeout=30)
        slurm.run(["sacctmgr", "-i", "delete", "user", "root", "where", f"account={account}"], timeout=30)
        slurm.run(["sacctmgr", "-i", "delete", "account", account], timeout=30)


def test_a_script_with_its_own_sbatch_line_is_refused_not_silently_changed(tmp_path, pyslurm_env):
    script, directives = _held_array(f"stray-{uuid.uuid4().hex[:8]}", tmp_path)
    stray = script.replace("#SBATCH --time=3\n", "#SBATCH --time=3\n#SBATCH --requeue\n")
    from bridge.slurm_client import SubmissionRefused

    with pytest.raises(SubmissionRefused, match="--requeue"):
        pyslurm_env.backend.client.submit(stray, directives)


def test_a_hung_worker_is_killed_at_the_timeout_and_the_next_call_gets_a_fresh_one(pyslurm_env):
    client = pyslurm_env.backend.client
    worker = client.worker
    assert client.max_array_size() >= 1  # a live worker
    hung = worker.pid
    os.kill(hung, signal.SIGSTOP)  # as a libslurm call stuck in an RPC: alive, never answering
    with pytest.raises(CommandTimeout, match="worker killed"):
        worker.call("config", timeout=1.0)
    assert not os.path.exists(f"/proc/{hung}") or _zombie_or_gone(hung)
    assert client.version().startswith("22.05") and worker.pid != hung


def test_a_worker_that_dies_mid_call_is_an_error_of_that_call_and_the_next_call_works(pyslurm_env):
    client = pyslurm_env.backend.client
    client.version()
    dying = client.worker.pid
    os.kill(dying, signal.SIGSTOP)  # held inside the call, then crashed there (as by a fault in libslurm)
    threading.Timer(0.3, os.kill, (dying, signal.SIGSEGV)).start()
    threading.Timer(0.4, os.kill, (dying, signal.SIGCONT)).start()
    with pytest.raises(CommandError, match="exited during config") as e:
        client.worker.call("config", timeout=30.0)
    assert not isinstance(e.value, CommandTimeout)
    assert client.version().startswith("22.05") and client.worker.pid != dying
    between = client.worker.pid
    os.kill(between, signal.SIGKILL)  # dead between calls: the next call simply starts another
    deadline = time.monotonic() + 10
    while client.worker.pid == between and time.monotonic() < deadline:  # reaped once the kill has landed
        time.sleep(0.01)
    assert client.version().startswith("22.05") and client.worker.pid not in (between, None)


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return True
