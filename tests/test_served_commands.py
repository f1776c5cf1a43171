"""Short commands run by a running daemon (bridge.command_server) answer as the command's own process would.

The server runs in this process on a real Unix socket; `bridge.entry.main` is
the `beat-bridge` console script. Every served answer is compared with the same
command run locally (`bridge.cli.main`), and the server's own counters say
which path answered, so a silently local run cannot pass for a served one.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from bridge import cli, entry
from bridge.command_server import CommandServer
from bridge.command_socket import STARTED, config_argument, private_dir, served_command, socket_path
from bridge.config import load_config, resolve_config_path
from bridge.preflight import open_database
from bridge.queues import sync_queues

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "example-experiment.json"


@pytest.fixture
def bridge_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A checkout's config/ in tmp_path (SQLite in var/), migrated; a short private runtime directory."""
    (tmp_path / "config").mkdir()
    for name in ("bridge.toml", "queues.toml"):
        shutil.copy(REPO / "config" / name, tmp_path / "config" / name)
    runtime = Path(tempfile.mkdtemp(prefix="bbrun-"))  # a socket path must stay under 108 bytes
    monkeypatch.setenv("BEAT_BRIDGE_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("BEAT_BRIDGE_NO_DAEMON", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["db", "upgrade", "--config", "config/bridge.toml"]) == 0
    config = load_config(tmp_path / "config" / "bridge.toml")
    with open_database(config.path, config.database_url)() as session:
        sync_queues(session, config.queues)  # the queues in the database, no Slurm call
    yield tmp_path
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def server(bridge_dir: Path):
    served = CommandServer.start(load_config(bridge_dir / "config" / "bridge.toml"))
    assert served is not None
    yield served
    served.close()


def both(capsys: pytest.CaptureFixture[str], server: CommandServer, *argv: str) -> tuple[tuple, tuple]:
    """(rc, stdout, stderr) served by the daemon, then run locally; the server must have answered the first."""
    capsys.readouterr()
    before = server.served
    rc = entry.main(list(argv))
    served = (rc, *capsys.readouterr())
    assert server.served == before + 1, "the command was not answered by the daemon"
    try:
        rc = cli.main(list(argv))
    except SystemExit as e:  # argparse's usage error: the console script's exit code
        rc = e.code
    return served, (rc, *capsys.readouterr())


def test_served_answers_are_the_local_ones(capsys: pytest.CaptureFixture[str], server: CommandServer) -> None:
    config = ("--config", "config/bridge.toml")
    assert cli.main(["experiments", "add", str(EXAMPLE), "--schedule", *config]) == 0
    shutil.copy(REPO / "tests/data/bad/declarations/name-escape.json", "bad.json")
    for argv in (("experiments", "add", "missing.json"), ("experiments", "add", "bad.json"),
                 ("experiments", "list"), ("experiments", "list", "--json"),
                 ("experiments", "show", "1", "--no-slurm", "--json"), ("experiments", "show", "7"),
                 ("experiments", "cancel", "7"), ("experiments", "schedule", "1"), ("status", "--json"),
                 ("experiments", "show", "x")):
        served, local = both(capsys, server, *argv, *config)
        assert served == local, argv
    assert server.declined == 0


def test_a_served_add_reads_the_callers_relative_path_and_writes_as_a_local_one(
        capsys: pytest.CaptureFixture[str], server: CommandServer, bridge_dir: Path) -> None:
    (bridge_dir / "sub").mkdir()
    shutil.copy(EXAMPLE, bridge_dir / "sub" / "mine.json")
    os.chdir(bridge_dir / "sub")
    capsys.readouterr()
    assert entry.main(["experiments", "add", "mine.json", "--schedule", "--config", "../config/bridge.toml"]) == 0
    out = capsys.readouterr().out
    assert out == "added experiment 1 alice/example-diamond from mine.json\nscheduled experiment 1: S\n"
    assert server.served == 1
    assert entry.main(["experiments", "cancel", "1", "--config", "../config/bridge.toml"]) == 0
    assert capsys.readouterr().out == "cancelling experiment 1: status C\n"
    assert cli.main(["experiments", "list", "--config", "../config/bridge.toml"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["1", "C"]


def test_a_changed_queues_toml_is_read_afresh_by_running_the_command_here(
        capsys: pytest.CaptureFixture[str], server: CommandServer, bridge_dir: Path) -> None:
    queues = bridge_dir / "config" / "queues.toml"
    queues.write_text(queues.read_text() + "\n# edited\n")
    assert entry.main(["experiments", "list", "--config", "config/bridge.toml"]) == 0
    assert (server.served, server.declined) == (0, 1)


def test_no_daemon_or_a_stale_socket_runs_the_command_here(capsys: pytest.CaptureFixture[str],
                                                            bridge_dir: Path) -> None:
    assert entry.main(["experiments", "list", "--config", "config/bridge.toml"]) == 0
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = socket_path(bridge_dir / "config" / "bridge.toml")
    Path(os.environ["BEAT_BRIDGE_RUNTIME_DIR"]).chmod(0o700)
    stale.bind(str(path))
    stale.close()  # the file stays, no one listens: a daemon that was killed
    assert path.exists()
    capsys.readouterr()
    assert entry.main(["experiments", "show", "3", "--config", "config/bridge.toml"]) == 1
    assert "no experiment with id 3" in capsys.readouterr().err


def test_a_directory_others_may_enter_is_never_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    assert not private_dir(open_dir, create=False)
    monkeypatch.setenv("BEAT_BRIDGE_RUNTIME_DIR", str(open_dir))
    (tmp_path / "bridge.toml").write_text("")
    assert CommandServer.start(load_config(REPO / "config" / "bridge.toml")) is None


def test_a_daemon_ending_mid_command_is_an_error_never_a_second_run(
        capsys: pytest.CaptureFixture[str], bridge_dir: Path) -> None:
    """It said it started (the daemon's first byte), then closed: the command may have written; not run again."""
    runtime = Path(os.environ["BEAT_BRIDGE_RUNTIME_DIR"])
    runtime.chmod(0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path(bridge_dir / "config" / "bridge.toml")))
    listener.listen(1)

    def die_mid_command() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(STARTED)
        connection.close()

    peer = threading.Thread(target=die_mid_command)
    peer.start()
    rc = entry.main(["experiments", "add", str(EXAMPLE), "--config", "config/bridge.toml"])
    peer.join()
    listener.close()
    assert rc == 1 and "ended before answering" in capsys.readouterr().err
    assert cli.main(["experiments", "list", "--json", "--config", "config/bridge.toml"]) == 0
    assert capsys.readouterr().out.strip() == "[]"  # nothing was added here behind the error


@pytest.mark.parametrize(("argv", "served"), [
    (["experiments", "list"], ("experiments", "list")),
    (["status", "--json"], ("status",)),
    (["-v", "experiments", "list"], None),
    (["experiments", "list", "--help"], None),
    (["experiments", "add", "-"], None),
    (["experiments", "wait", "1"], None),
    (["run"], None),
    (["queues", "check"], None),
])
def test_which_commands_a_daemon_serves(argv: list[str], served: tuple | None) -> None:
    assert served_command(argv) == served


@pytest.mark.parametrize(("argv", "environ", "expected"), [
    (["experiments", "list"], {}, "config/bridge.toml"),
    (["experiments", "list"], {"BEAT_BRIDGE_CONFIG": "env.toml"}, "env.toml"),
    (["experiments", "list", "--config", "a.toml"], {"BEAT_BRIDGE_CONFIG": "env.toml"}, "a.toml"),
    (["status", "--config=b.toml"], {}, "b.toml"),
])
def test_the_socket_is_looked_up_for_the_bridge_toml_the_command_would_load(argv, environ, expected) -> None:
    assert config_argument(argv, environ) == resolve_config_path(expected, {}) == Path(expected)
