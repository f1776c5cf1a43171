"""A real single-host Slurm 22.05 cluster on loopback, for development, tests and the demo.

`LocalCluster.up()` is idempotent: it installs missing Debian packages, writes the
configuration under one state directory, starts whatever of munged, slurmdbd,
slurmctld and the slurmd nodes is not running, registers the accounting account and
waits until every node is idle and sacct answers. `down()` stops exactly the
processes named in our pid files. See ../shared/slurm-notes.md for the recipe.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path

from bridge.devcluster import procs
from bridge.devcluster.conf import ClusterSpec, render_slurm_conf, render_slurmdbd_conf
from bridge.devcluster.mariadb import OwnMariaDB, answers
from bridge.devcluster.packages import install_packages, missing_packages
from bridge.devcluster.paths import default_state_dir
from bridge.errors import ClusterError, CommandError
from bridge.runner import LocalRunner

Say = Callable[[str], None]


def load_spec(state_dir: Path | None = None, mysql_port: int = 3306) -> ClusterSpec:
    """The spec of the cluster in state_dir; its accounting database name is made once and kept."""
    state_dir = (state_dir or default_state_dir()).resolve()
    name_file = state_dir / "etc" / "database"
    if name_file.exists():
        database = name_file.read_text().strip()
    else:
        # A new name for new state: job ids restart at 1, so old records must not be seen.
        database = f"beatbridge_acct_{secrets.token_hex(4)}"
    return ClusterSpec(
        state_dir=state_dir, hostname=socket.gethostname().split(".")[0],
        mysql_port=mysql_port, database=database,
    )


class LocalCluster:
    """The local cluster described by a spec: up, down, status."""

    def __init__(self, spec: ClusterSpec, say: Say = print) -> None:
        self.spec = spec
        self.say = say
        self.runner = LocalRunner(env=spec.env())
        self.mariadb = OwnMariaDB(spec)

    # -- the daemons ------------------------------------------------------------------

    def daemons(self) -> list[procs.Daemon]:
        """Our daemons in start order (MariaDB only where we had to start our own)."""
        s, run, logs = self.spec, self.spec.run_dir, self.spec.log_dir
        found = [
            procs.Daemon("munged", procs.argv_of(
                "/usr/sbin/munged", "--foreground", "--force", f"--socket={s.munge_socket}",
                f"--key-file={s.munge_dir / 'munge.key'}", f"--pid-file={run / 'munged.daemon.pid'}",
                f"--log-file={logs / 'munged.log'}", f"--seed-file={s.munge_dir / 'munged.seed'}",
            ), run / "munged.pid", logs / "munged.out"),
        ]
        if self.mariadb.owned():
            found.append(self.mariadb.daemon())
        found += [
            procs.Daemon("slurmdbd", ("/usr/sbin/slurmdbd", "-D"), run / "slurmdbd.pid", logs / "slurmdbd.out"),
            procs.Daemon("slurmctld", ("/usr/sbin/slurmctld", "-D", "-i"), run / "slurmctld.pid",
                         logs / "slurmctld.out"),
        ]
        found += [
            procs.Daemon(f"slurmd-{n.name}", ("/usr/sbin/slurmd", "-D", "-N", n.name),
                         run / f"slurmd-{n.name}.pid", logs / f"slurmd-{n.name}.out")
            for n in s.nodes
        ]
        return found

    def daemon(self, name: str) -> procs.Daemon:
        """One daemon by name; the error lists the valid names."""
        by_name = {d.name: d for d in self.daemons()}
        if name not in by_name:
            raise ClusterError(f"no daemon {name!r}; valid: {', '.join(by_name)}")
        return by_name[name]

    def status(self) -> dict[str, int | None]:
        """Each daemon's pid, or None when it does not run."""
        return {d.name: procs.running_pid(d) for d in self.daemons()}

    # -- up ---------------------------------------------------------------------------

    def up(self, timeout: float = 90.0) -> None:
        """Bring the whole cluster up; return when nodes are idle and sacct answers."""
        t0 = time.monotonic()
        install_packages(missing_packages(), LocalRunner(env={"DEBIAN_FRONTEND": "noninteractive"}), self.say)
        if self.write_config() and any(self.status().values()):
            self.say("configuration changed: restarting the running daemons")
            self.down()
        if not answers(self.spec.mysql_host, self.spec.mysql_port) and not self.mariadb.owned():
            self.mariadb.prepare(self.say)
        for daemon in self.daemons():
            self.start_daemon(daemon.name, timeout=max(5.0, timeout - (time.monotonic() - t0)))
        self.wait_nodes_idle(deadline=t0 + timeout)
        self.ensure_account()
        self.wait_sacct(deadline=t0 + timeout)
        self.say(f"cluster up in {time.monotonic() - t0:.1f} s (SLURM_CONF={self.spec.slurm_conf})")

    def write_config(self) -> bool:
        """Write slurm.conf, slurmdbd.conf (mode 600), the munge key and the directories.

        Returns True when a configuration file changed.
        """
        s = self.spec
        for sub in ("etc", "state", "spool", "log", "run", "munge"):
            (s.state_dir / sub).mkdir(parents=True, exist_ok=True)
        for node in s.nodes:
            (s.state_dir / "spool" / node.name).mkdir(exist_ok=True)
        os.chmod(s.munge_dir, 0o755)  # munged wants execute rights for all on its socket's directory
        (s.state_dir / "etc" / "database").write_text(s.database + "\n")
        changed = _write_if_changed(s.slurm_conf, render_slurm_conf(s), 0o644)
        changed |= _write_if_changed(s.slurmdbd_conf, render_slurmdbd_conf(s), 0o600)
        key = s.munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(128))
        os.chmod(key, 0o400)
        return changed

    def start_daemon(self, name: str, timeout: float = 30.0) -> None:
        """Start one daemon unless it runs, and wait until it answers."""
        daemon = self.daemon(name)
        pid = procs.running_pid(daemon)
        if pid is None:
            pid = procs.start(daemon, self.spec.env())
            self.say(f"started {name} (pid {pid})")
        else:
            self.say(f"{name} already runs (pid {pid})")
        self._wait_ready(daemon, pid, time.monotonic() + timeout)

    def _wait_ready(self, daemon: procs.Daemon, pid: int, deadline: float) -> None:
        while not self._ready(daemon):
            if not procs.is_running(pid, daemon.binary):
                raise self._failure(f"{daemon.name} exited during start-up", daemon)
            if time.monotonic() > deadline:
                raise self._failure(f"{daemon.name} did not become ready in time", daemon)
            time.sleep(0.1)

    def _ready(self, daemon: procs.Daemon) -> bool:
        s = self.spec
        if daemon.name == "munged":
            return s.munge_socket.exists()
        if daemon.name == "mariadb":
            return answers(s.mysql_host, s.mysql_port)
        if daemon.name == "slurmdbd":
            return answers("127.0.0.1", s.dbd_port, greets=False)
        if daemon.name == "slurmctld":
            return self._ok(["scontrol", "ping"], "UP")
        return True  # a slurmd: wait_nodes_idle checks them all at once

    def sinfo(self) -> str:
        """sinfo's partition summary (for `cluster status`), or why it failed."""
        result = self.runner.run(["sinfo", "-o", "%P %a %l %D %t %N"], timeout=10)
        return result.stdout.rstrip() or result.stderr.rstrip()

    def wait_nodes_idle(self, deadline: float) -> None:
        """Wait until sinfo shows every node idle (or busy with work: mixed/allocated)."""
        want = {n.name for n in self.spec.nodes}
        usable = {"idle", "mix", "mixed", "alloc", "allocated"}
        states: dict[str, str] = {}
        resumed = False
        while time.monotonic() < deadline:
            result = self.runner.run(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=10)
            states = dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)
            if want <= {n for n, st in states.items() if st in usable}:
                return
            if "inval" in states.values():  # a config mismatch never heals by itself
                reasons = self.runner.run(["sinfo", "-R"], timeout=10).stdout
                raise self._failure(f"node configuration invalid: {states}\n{reasons}")
            stuck = sorted(n for n, st in states.items() if st.rstrip("*~#$@") in ("drain", "down", "drng"))
            if stuck and not resumed:  # e.g. drained under an older config kept in the state files
                self.say(f"resuming nodes {', '.join(stuck)} ({', '.join(states[n] for n in stuck)})")
                self.runner.run(["scontrol", "update", f"nodename={','.join(stuck)}", "state=resume"], timeout=10)
                resumed = True
            time.sleep(0.2)
        raise self._failure(f"nodes not idle in time (sinfo says {states or 'nothing'})",
                            *[self.daemon(f"slurmd-{n}") for n in sorted(want)])

    def ensure_account(self) -> None:
        """Register the `beat` account and root in accounting, so audits can group by account."""
        show = self.runner.run(["sacctmgr", "-n", "-P", "show", "account", "beat", "format=account"], timeout=20)
        if "beat" not in show.stdout.split():
            self.runner.run(["sacctmgr", "-i", "add", "account", "beat",
                             "Description=BEAT experiments", "Organization=beat"], timeout=20).check()
            self.runner.run(["sacctmgr", "-i", "add", "user", "root", "Account=beat"], timeout=20)

    def wait_sacct(self, deadline: float) -> None:
        """Wait until sacct answers from slurmdbd (it says 'Problem talking to the database' until then)."""
        while time.monotonic() < deadline:
            if self._ok(["sacct", "-X", "-n", "-P", "-S", "now-1minutes", "-E", "now"], ""):
                return
            time.sleep(0.2)
        raise self._failure("sacct does not answer", self.daemon("slurmdbd"))

    def _ok(self, argv: list[str], expect: str) -> bool:
        try:
            result = self.runner.run(argv, timeout=10)
        except CommandError:
            return False
        return result.ok and expect in result.stdout and "error" not in result.stderr.lower()

    def _failure(self, what: str, *daemons: procs.Daemon) -> ClusterError:
        logs = sorted(self.spec.log_dir.glob("*"))
        parts = [what, f"logs are in {self.spec.log_dir}: {', '.join(p.name for p in logs)}"]
        for d in daemons:
            parts.append(f"--- last lines of {d.log_file} ---\n{procs.tail(d.log_file)}")
        return ClusterError("\n".join(parts))

    # -- down -------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Cancel our jobs, then stop every daemon we started, last started first."""
        if procs.running_pid(self.daemon("slurmctld")):
            self.drain_jobs()
        stopped = [d.name for d in reversed(self.daemons()) if procs.stop(d)]
        for name in stopped:
            self.say(f"stopped {name}")
        return stopped

    def stop_daemon(self, name: str) -> bool:
        """Stop one daemon (e.g. slurmdbd, to test an accounting outage)."""
        return procs.stop(self.daemon(name))

    def drain_jobs(self, timeout: float = 20.0) -> None:
        """scancel everything and wait for squeue to empty, so no job outlives slurmd."""
        self.runner.run(["scancel", "--full", "--user=root"], timeout=20)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.runner.run(["squeue", "-h", "-o", "%i"], timeout=10)
            if result.ok and not result.stdout.strip():
                return
            time.sleep(0.2)
        self.say("warning: jobs still in squeue after scancel; stopping anyway")


def _write_if_changed(path: Path, text: str, mode: int) -> bool:
    changed = not path.exists() or path.read_text() != text
    if changed:
        path.write_text(text)
    os.chmod(path, mode)
    return changed
