"""`beat-bridge cluster ...` and `beat-bridge demo`: the commands of the local dev cluster (bridge.devcluster)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

Action = Callable[..., argparse.ArgumentParser]  # bridge.cli's _action: one sub-command with its handler


def add_cluster(commands: argparse._SubParsersAction, _action: Action) -> None:
    cluster = commands.add_parser(
        "cluster", help="the local single-host Slurm cluster (dev, tests, demo)",
        description="A real Slurm 22.05 cluster from Debian's packages on loopback: munged, "
        "slurmdbd on MariaDB, slurmctld and two slurmd nodes (n1, n2) with partitions cpu "
        "(default, 60 min), long (1 day) and debug (5 min). Everything lives in one state "
        "directory; clients need SLURM_CONF=<state>/etc/slurm.conf (see `cluster env`).",
    )
    cluster.add_argument(
        "--state-dir", type=Path, default=None,
        help="where config, state, logs and pid files live (default: $BEAT_BRIDGE_CLUSTER_DIR, "
        "else ~/.local/state/beat-bridge/cluster)",
    )
    cluster.add_argument("--mysql-port", type=int, default=3306,
                         help="MariaDB port for slurmdbd on 127.0.0.1 (default 3306)")
    actions = cluster.add_subparsers(title="actions", metavar="ACTION")
    _action(actions, "up", _cluster_up, "install what is missing, start what is not running, wait until ready")
    _action(actions, "down", _cluster_down, "cancel jobs, then stop exactly the daemons `up` started")
    _action(actions, "status", _cluster_status, "say which daemons run and what sinfo shows; exit 1 if any is down")
    _action(actions, "env", _cluster_env,
            "print `export SLURM_CONF=...` for a shell: eval \"$(beat-bridge cluster env)\"")
    start = _action(actions, "start", _cluster_start, "start one daemon (e.g. slurmdbd after `stop`)")
    start.add_argument("daemon", help="munged, slurmdbd, slurmctld, slurmd-n1, slurmd-n2")
    stop = _action(actions, "stop", _cluster_stop, "stop one daemon (e.g. slurmdbd, to test an outage)")
    stop.add_argument("daemon", help="munged, slurmdbd, slurmctld, slurmd-n1, slurmd-n2")


def _cluster(args: argparse.Namespace):
    from bridge.devcluster.cluster import LocalCluster, load_spec

    return LocalCluster(load_spec(args.state_dir, mysql_port=args.mysql_port))


def _cluster_up(args: argparse.Namespace) -> int:
    _cluster(args).up()
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    stopped = _cluster(args).down()
    if not stopped:
        print("nothing of ours was running")
    return 0


def _cluster_status(args: argparse.Namespace) -> int:
    cluster = _cluster(args)
    status = cluster.status()
    for name, pid in status.items():
        print(f"{name:12} {'running (pid %d)' % pid if pid else 'stopped'}")
    print(f"state dir    {cluster.spec.state_dir}")
    if status.get("slurmctld"):
        print(cluster.sinfo())
    return 0 if all(status.values()) else 1


def _cluster_env(args: argparse.Namespace) -> int:
    import shlex

    for key, value in _cluster(args).spec.env().items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _cluster_start(args: argparse.Namespace) -> int:
    _cluster(args).start_daemon(args.daemon)
    return 0


def _cluster_stop(args: argparse.Namespace) -> int:
    if not _cluster(args).stop_daemon(args.daemon):
        print(f"{args.daemon} was not running")
    return 0



def add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="bring the local cluster up and run two example experiments through the bridge",
        description="Brings the local cluster up if needed, creates a run directory with its own "
        "config and SQLite database, adds two experiments (diamond DAGs sharing a block, so one "
        "job is a mirror) and, when beat.backend.python is installed, a BEAT-native one (BEAT's test-prefix "
        "algorithms writing BEAT cache files), runs the bridge loop with live progress until both finish, and prints "
        "per block its state, nodes, elapsed time and sacct job ids.",
    )
    demo.add_argument("--workdir", type=Path, default=None,
                      help="where run directories go (default: <cluster state dir>/../demo)")
    demo.add_argument("--runner", choices=("local", "pyslurm"), default="local",
                      help="the Slurm client: local (Slurm's commands, the default) or pyslurm (libslurm's C API "
                      "in a worker process; needs pyslurm built for the cluster's Slurm, scripts/setup.sh)")
    demo.set_defaults(handler=demo_command, keeps_running=True)  # the garbage collector stays on (bridge.cli)


def demo_command(args: argparse.Namespace) -> int:
    from bridge.devcluster.cluster import LocalCluster, load_spec
    from poller.demo import make_run_dir, run_demo

    cluster = LocalCluster(load_spec())
    cluster.up()
    base = args.workdir or cluster.spec.state_dir.parent / "demo"
    run = run_demo(make_run_dir(base, cluster.spec.slurm_conf, runner=args.runner))
    return 0 if run.all_done else 1

