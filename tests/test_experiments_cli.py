"""`experiments show`, `list --json` and `wait` over a real SQLite database, Slurm being the replay fake.

Splits are declared, submitted and settled through the real submitter and
poller; squeue's pending reasons are recorded output (tests/data/squeue_reasons.txt,
an array waiting on --begin and a held one, on the live cluster).
"""

from __future__ import annotations

import json

import pytest
from fakes import SQUEUE_DOWN, data_file
from replay_env import JOB, answer, block, declare, element_done, make_replay_env, poll, status_of, submit

from bridge import spool_retention
from bridge.app import App
from bridge.cli import main
from bridge.cli_experiments import WAIT_DONE, WAIT_NOT_DONE, WAIT_TIMEOUT, show, wait_for
from bridge.sbatch_scripts import spool as spool_files


@pytest.fixture
def env(tmp_path):
    return make_replay_env(tmp_path)


def shown(env, capsys, experiment_id: int, as_json: bool = False):
    assert show(App(env.config, env.sessions, env.backend), experiment_id, as_json=as_json) == 0
    out = capsys.readouterr().out
    return json.loads(out) if as_json else out.splitlines()


def cli(env, *args: str) -> int:
    return main([*args, "--config", str(env.root / "bridge.toml")])


def test_queued_elements_show_slurms_pending_reason_from_one_squeue_call(env, capsys):
    experiment = declare(env, {"sweep": block(slots=2)})
    submit(env)
    env.fake.then("squeue", data_file("squeue_reasons.txt", JOB))
    lines = shown(env, capsys, experiment)
    assert f"    split 0: N (queued), element {JOB}_0, pending: BeginTime" in lines
    assert f"    split 1: N (queued), element {JOB}_1, pending: BeginTime" in lines
    (argv,) = env.fake.of("squeue")
    assert argv[:5] == ("squeue", "-h", "-r", "-t", "PENDING") and argv[argv.index("-j") + 1] == str(JOB)


def test_slurm_unreadable_is_said_in_one_line_and_the_rest_is_shown(env, capsys):
    experiment = declare(env, {"sweep": block(slots=2)})
    submit(env)
    env.fake.then("squeue", SQUEUE_DOWN)
    lines = shown(env, capsys, experiment)
    assert [line for line in lines if line.startswith("Slurm not read")] == [
        "Slurm not read (pending reasons unknown): squeue exited 1: squeue: error: slurm_load_jobs error: "
        "Socket timed out on send/recv operation"]
    assert f"    split 1: N (queued), element {JOB}_1" in lines


def test_a_failed_block_is_explained_from_its_snapshots_then_its_removed_logs(env, capsys):
    experiment = declare(env, {"a": block(slots=2)})
    sub = submit(env)
    spool = spool_files.array_spool_dir(env.config.spool_dir, sub.tag)
    (spool / f"slurm-{JOB}_0.err").write_text("reading 2 rows\nValueError: row 1 is not a number\n")
    answer(env, "failed", "squeue", sub)  # element 0 exit 3, element 1 killed by signal 9
    poll(env)
    assert status_of(env, experiment) == "F"
    view = shown(env, capsys, experiment, as_json=True)
    (block_view,) = view["blocks"]
    assert block_view["job"] is None  # BEAT deleted the job rows: what follows is from snapshots and results
    first, second = block_view["splits"]
    assert (first["source"], first["status"], first["slurm_state"], first["exit_code"], first["node"]) == (
        "accounting snapshot", "F", "FAILED", "3:0", "n1")
    assert "exited with code 3" in first["system_error"] and second["status"] == "L"
    assert first["logs"]["state"] == "present" and first["stderr_tail"][-1] == "ValueError: row 1 is not a number"
    assert view["why"]["element_id"] == f"{JOB}_0" and "exited with code 3" in view["why"]["error"]
    assert env.fake.count("squeue") == 1  # the poll's: nothing queued, so show asked Slurm nothing

    with env.sessions() as session:
        assert spool_retention.sweep(session, env.config.spool_dir, 0.0) == [spool]
    lines = shown(env, capsys, experiment)
    assert f"        logs (removed): {spool.resolve()}/slurm-{JOB}_0.out, .err" in lines
    assert not any("| ValueError" in line for line in lines)


def test_list_json_and_wait_exit_codes_follow_the_experiments_status(env, capsys):
    running = declare(env, {"a": block(slots=2)}, name="running")
    sub = submit(env)
    assert cli(env, "experiments", "wait", str(running), "--timeout", "0.2", "--interval", "0.05") == WAIT_TIMEOUT
    element_done(env, sub, 0)
    element_done(env, sub, 1)
    answer(env, "completed", "squeue", sub)
    poll(env)
    assert cli(env, "experiments", "wait", str(running)) == WAIT_DONE
    failed = declare(env, {"a": block(slots=2, size=6)}, name="failing")
    sub = submit(env, job=JOB + 10)
    answer(env, "failed", "squeue", sub)
    poll(env)
    capsys.readouterr()
    assert cli(env, "experiments", "wait", str(failed)) == WAIT_NOT_DONE
    assert capsys.readouterr().out == f"experiment {failed}: F (failed): `beat-bridge experiments show {failed}` " \
                                      "says why\n"
    assert cli(env, "experiments", "list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["name"], r["status"], r["blocks_done"], r["blocks"]) for r in rows] == [
        (running, "running", "D", 1, 1), (failed, "failing", "F", 0, 1)]
    assert cli(env, "experiments", "show", "99") == 1
    assert "no experiment with id 99" in capsys.readouterr().err


def test_wait_reads_the_status_once_per_interval_until_its_timeout(env):
    experiment = declare(env, {"a": block()})
    clock = [0.0]
    reads = []

    def sleep(seconds: float) -> None:
        reads.append(seconds)
        clock[0] += seconds

    assert wait_for(env.sessions, experiment, timeout=5.0, interval=2.0, clock=lambda: clock[0], sleep=sleep) is None
    assert reads == [2.0, 2.0, 1.0] and env.fake.calls == []  # the database only, never Slurm
