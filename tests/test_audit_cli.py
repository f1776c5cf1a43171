"""`beat-bridge audit` as a user runs it (a subprocess) over snapshots in a fresh SQLite database."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from bridge.config import load_config
from bridge.models_audit import AccountingSnapshot
from bridge.preflight import open_database

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 20, 9, 0, 0)
PERIOD = ("--since", "2026-11-20", "--until", "2026-11-21")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args, "--config", "config/bridge.toml"],
                          capture_output=True, text=True, timeout=120, cwd=cwd, preexec_fn=lambda: os.umask(0o022))


def _row(i: int, author: str, queue: str, state: str = "COMPLETED", **over) -> AccountingSnapshot:
    values = dict(split_id=i, split_status="C" if state == "COMPLETED" else "F", experiment_id=1 + i % 2,
                  experiment_name=f"exp{1 + i % 2}", author=author, block_name="b", queue_name=queue,
                  algorithm="bridge.examples.algorithms:square", array_job_id=300, element_id=f"300_{i}",
                  status="complete", first_seen=T0, attempts=1, partition="cpu", node_list="n1", alloc_cpus=2,
                  req_mem_mb=1000, max_rss_kb=100 * 1024, total_cpu_s=50.0, elapsed_s=60 * (i + 1),
                  timelimit_min=30, submit=T0, start=T0 + timedelta(seconds=5), end=T0 + timedelta(minutes=i + 1),
                  state=state, exit_code="0:0" if state == "COMPLETED" else "1:0")
    values.update(over)
    return AccountingSnapshot(**values)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    config = load_config(tmp_path / "config" / "bridge.toml")
    sessions = open_database(config.path, config.database_url)
    with sessions() as session:
        session.add_all([_row(i, "bob" if i < 6 else "amy", "default" if i % 3 else "long") for i in range(8)])
        session.add(_row(8, "amy", "long", "FAILED"))
        session.add(_row(9, "bob", "default", end=T0 + timedelta(days=3)))  # outside the period
        session.commit()
    return tmp_path


def test_the_table_groups_by_author_with_a_total(workdir):
    done = _cli("audit", *PERIOD, "--by", "author", cwd=workdir)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "audit 2026-11-20T00:00:00 .. 2026-11-21T00:00:00 UTC, by author"
    # amy: elements 6, 7, 8 (7 + 8 + 9 minutes on 2 cpus) before bob: 0..5 (1 + ... + 6 minutes)
    assert [line.split()[0] for line in lines[1:5]] == ["author", "amy", "bob", "total"]
    assert lines[4].split()[1] == "9" and "FAILED exit 1" in done.stdout


def test_csv_sums_match_the_rows_put_in(workdir):
    done = _cli("audit", *PERIOD, "--by", "queue", "--format", "csv", cwd=workdir)
    assert done.returncode == 0, done.stderr
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(done.stdout))}
    # 2 cpus x 60 s x (i + 1) for i in 0..8
    assert float(rows["total"]["core_hours"]) == pytest.approx(2 * 60 * sum(range(1, 10)) / 3600, abs=1e-6)
    assert float(rows["total"]["wasted_core_hours"]) == pytest.approx(2 * 60 * 9 / 3600, abs=1e-6)
    assert (rows["long"]["elements"], rows["default"]["elements"]) == ("4", "5")
    assert rows["long"]["failures"] == "FAILED exit 1=1"


def test_json_of_one_experiment_to_a_file(workdir):
    out = workdir / "audit.json"
    done = _cli("audit", *PERIOD, "--experiment", "2", "--format", "json", "--output", str(out), cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"audit report: {out.resolve()}"
    assert out.stat().st_mode & 0o777 == 0o644  # readable by others, as a new file under umask 022
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".audit.json")] == []  # no temporary left
    report = json.loads(out.read_text())
    assert [g["key"] for g in report["groups"]] == ["2 exp2"] and report["total"]["elements"] == 4


def test_advise_prints_usage_and_a_suggested_mapping_change(workdir):
    done = _cli("audit", *PERIOD, "--advise", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "p95 MaxRSS MB" in done.stdout and "[queues.default]" in done.stdout
    assert "memory_limit = 150  # was 1000" in done.stdout and "never applied" in done.stdout
    as_json = json.loads(_cli("audit", *PERIOD, "--advise", "--format", "json", cwd=workdir).stdout)
    assert {p["queue"] for p in as_json["proposals"]} >= {"default"}


@pytest.mark.parametrize(("args", "says"), [
    (("--since", "yesterday"), "--since: 'yesterday' is not a time: expected YYYY-MM-DD"),
    (("--since", "2026-11-21", "--until", "2026-11-20"), "is not before --until"),
    (("--by", "user"), "invalid choice: 'user'"),
    (("--output", "/nonexistent/dir/report.csv"), "--output /nonexistent/dir/report.csv: cannot write"),
])
def test_bad_options_are_one_line_naming_the_option(workdir, args, says):
    done = _cli("audit", *args, cwd=workdir)
    assert done.returncode != 0 and says in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
