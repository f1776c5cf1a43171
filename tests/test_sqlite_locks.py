"""Checking a configuration never drops this process's SQLite locks (bridge.preflight reads the file through SQLite).

POSIX: closing any descriptor of a file drops every fcntl lock the process holds
on it. A daemon whose command server re-read bridge.toml checked the database
file with open()/close(): its engine's locks were gone, the next command process
to close its connection found itself the last one, checkpointed and deleted the
WAL, and the daemon went on committing into the deleted file, seen by no one
(tests/integration/test_bad_inputs_daemon.py caught it: no array ever submitted).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from bridge.db import create_engine_for
from bridge.preflight import url_problem

READ_AND_CLOSE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1])
print(connection.execute("SELECT count(*) FROM t").fetchone()[0])
connection.close()
"""


def _other_process_counts(path: Path) -> int:
    """Rows of t as a new process sees them; it closes the last connection it knows of."""
    done = subprocess.run([sys.executable, "-c", READ_AND_CLOSE, str(path)], capture_output=True, text=True,
                          timeout=60, check=True)
    return int(done.stdout)


def test_a_url_check_beside_an_open_engine_keeps_its_commits_visible_to_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "bridge.sqlite"
    url = f"sqlite:///{path}"
    engine = create_engine_for(url)  # WAL mode (bridge.db); the pool keeps its connection open
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert url_problem(url) is None  # the configuration check, in the process that holds the engine
    assert _other_process_counts(path) == 1
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (2)"))
    assert (tmp_path / "bridge.sqlite-wal").exists()
    assert _other_process_counts(path) == 2  # with open()/close() in the check: still 1, the WAL deleted
    engine.dispose()


def test_a_file_that_is_no_database_is_still_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("not a database, but long enough to have a header of its own\n" * 4)
    assert url_problem(f"sqlite:///{path}") == f"an SQLite database file, but {path} is not an SQLite database"
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    assert url_problem(f"sqlite:///{empty}") is None  # SQLite makes its database there, as before
