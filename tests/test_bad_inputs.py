"""The hostile-input corpus (tests/data/bad/): every bad input is refused with one clear line, nothing written.

One parametrised test drives every file of the corpus (see tests/data/bad/README.md):
declarations given to `experiments add`, bridge.toml and queues.toml files given as
`--config`, argument lists of the CLI, and element result files read by the poller.
A refused input must exit non-zero with exactly one line on stderr (no traceback)
naming the file, key or id, and the words expect.toml lists for it (what is valid);
the database's row counts must not change. Commands run in-process through
`bridge.cli.main`, so an exception escaping it fails the case as a traceback would.
The cases marked `postgres` (lengths and NULs PostgreSQL refuses but SQLite keeps)
run on PostgreSQL as well.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from bridge.cli import main
from bridge.config import load_config
from bridge.db import create_session_factory
from bridge.declaration import load_experiment_file
from bridge.helpers import schedule_experiment
from bridge.models import Base
from bridge.queues import sync_queues

BAD = Path(__file__).parent / "data" / "bad"


def _checkout_spool():
    """This checkout's sbatch_scripts/spool.py: an editable install maps bridge.sbatch_scripts to one checkout only."""
    path = Path(__file__).resolve().parent.parent / "sbatch_scripts" / "spool.py"
    spec = importlib.util.spec_from_file_location("_spool_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


spool_files = _checkout_spool()
EXPECT: dict[str, dict] = tomllib.loads((BAD / "expect.toml").read_text())
KINDS = ("declarations", "bridge", "queues", "cli", "results")
CASES = sorted(str(p.relative_to(BAD)) for kind in KINDS for p in (BAD / kind).iterdir())


@dataclass
class Workspace:
    """A valid bridge.toml, queues.toml and database that every case starts from."""

    root: Path
    url: str
    config: Path
    pending: int
    scheduled: int

    def text(self, raw: bytes) -> bytes:
        for name, value in (("@DB@", self.url), ("@WS@", str(self.root)), ("@PENDING@", str(self.pending)),
                            ("@SCHEDULED@", str(self.scheduled))):
            raw = raw.replace(name.encode(), value.encode())
        return raw

    def counts(self) -> dict[str, int]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return {t.name: connection.scalar(select(func.count()).select_from(t))
                        for t in Base.metadata.sorted_tables}
        finally:
            engine.dispose()


def make_workspace(root: Path, url: str) -> Workspace:
    """Copy the good configuration (database URL filled in), migrate, sync queues, add a P and an S experiment."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(BAD / "templates", root / "templates")
    shutil.copytree(BAD.parent / "beat_prefix", root / "beat_prefix")  # bridge.toml's beat_prefix
    shutil.copy(BAD / "good" / "queues.toml", root / "queues.toml")
    config = root / "bridge.toml"
    config.write_text((BAD / "good" / "bridge.toml").read_text().replace("@DB@", url))
    loaded = load_config(config)
    sessions = create_session_factory(url)
    ids = []
    with sessions() as session:
        sync_queues(session, loaded.queues)
        for name in ("pending", "scheduled"):
            good = root / f"{name}.json"
            good.write_text((BAD / "good" / "experiment.json").read_text().replace("@NAME@", name))
            ids.append(load_experiment_file(session, good).id)
        schedule_experiment(session, ids[1])
    sessions.kw["bind"].dispose()
    return Workspace(root, url, config, *ids)


@pytest.fixture(scope="module")
def sqlite_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("bad-sqlite")
    return make_workspace(root / "ws", f"sqlite:///{root / 'ws' / 'bridge.sqlite'}")


@pytest.fixture
def postgresql_workspace(postgres_url: str, tmp_path: Path) -> Workspace:
    """A workspace on a fresh PostgreSQL database (conftest's postgres_url), for the few cases that need one."""
    return make_workspace(tmp_path / "ws", postgres_url)


def _params() -> list:
    params = []
    for case in CASES:
        backends = ("sqlite", "postgresql") if EXPECT.get(case, {}).get("postgres") else ("sqlite",)
        for backend in backends:
            marks = [pytest.mark.postgres] if backend == "postgresql" else []
            params.append(pytest.param(case, backend, id=f"{case}-{backend}", marks=marks))
    return params


def test_every_case_has_its_expectation() -> None:
    assert len(CASES) >= 60
    assert sorted(EXPECT) == CASES


def argv_of(case: str, ws: Workspace) -> tuple[list[str], str]:
    """The command line of a case, and the text its error line must name (file or id)."""
    source = BAD / case
    kind = case.split("/")[0]
    if kind == "declarations":
        return ["experiments", "add", str(source), "--config", str(ws.config)], source.name
    if kind == "bridge":
        copy = ws.root / source.name
        copy.write_bytes(ws.text(source.read_bytes()))
        return ["experiments", "list", "--config", str(copy)], source.name
    if kind == "queues":
        copy, bridge = ws.root / source.name, ws.root / f"bridge-for-{source.name}"
        copy.write_bytes(source.read_bytes())
        bridge.write_text(ws.config.read_text().replace('queues = "queues.toml"', f'queues = "{copy.name}"'))
        return ["experiments", "list", "--config", str(bridge)], source.name
    words = ws.text(source.read_bytes()).decode().split("\n")[:-1]
    if "--config" not in words:
        words[2:2] = ["--config", str(ws.config)]
    return words, ws.text(EXPECT[case]["names"].encode()).decode()


def error_lines(capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the command wrote to stderr: its own lines, and the log records the CLI would show."""
    err = capsys.readouterr().err
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return [line for line in err.split("\n") if line] + logged


@pytest.mark.parametrize(("case", "backend"), _params())
def test_bad_input_is_refused_in_one_line(case: str, backend: str, request: pytest.FixtureRequest,
                                          capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture,
                                          tmp_path: Path) -> None:
    says = EXPECT[case]["says"]
    if case.startswith("results/"):
        spool = tmp_path / "spool"
        spool.mkdir()
        shutil.copy(BAD / case, spool_files.result_file(spool, 0))
        result = spool_files.read_result(spool, 0)
        assert result is not None and result["status"] != 0, result
        line = result["system_error"]
        assert "\n" not in line and str(spool_files.result_file(spool, 0)) in line
        for word in says:
            assert word in line
        return
    ws: Workspace = request.getfixturevalue(f"{backend}_workspace")
    argv, names = argv_of(case, ws)
    before = ws.counts()
    capsys.readouterr()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's usage errors exit; the process would end with this code
            code = e.code
    lines = error_lines(capsys, caplog)
    assert code != 0
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("beat-bridge") and "Traceback" not in line
    assert names in line
    for word in says:
        assert word in line, line
    assert ws.counts() == before
