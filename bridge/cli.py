"""The `beat-bridge` command: argparse wiring and logging set-up, nothing else."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bridge.errors import BridgeError

log = logging.getLogger("bridge")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one beat-bridge command; exit code 0 on success, 1 on a BridgeError, 2 on bad usage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except BridgeError as e:
        print(f"beat-bridge: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("beat-bridge: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beat-bridge",
        description="Run BEAT experiments on Slurm: splits become job-array elements on "
        "partitions, sacct drives the callbacks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every external command (DEBUG)")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_cluster(commands)
    _add_demo(commands)
    return parser


# -- cluster ------------------------------------------------------------------------------


def _add_cluster(commands: argparse._SubParsersAction) -> None:
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
    _action(actions, "env", _cluster_env, "print `export SLURM_CONF=...` for a shell: eval \"$(beat-bridge cluster env)\"")
    start = _action(actions, "start", _cluster_start, "start one daemon (e.g. slurmdbd after `stop`)")
    start.add_argument("daemon", help="munged, slurmdbd, slurmctld, slurmd-n1, slurmd-n2")
    stop = _action(actions, "stop", _cluster_stop, "stop one daemon (e.g. slurmdbd, to test an outage)")
    stop.add_argument("daemon", help="munged, slurmdbd, slurmctld, slurmd-n1, slurmd-n2")


def _action(actions, name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def _cluster(args: argparse.Namespace):
    from bridge.cluster import LocalCluster, load_spec

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
        result = cluster.runner.run(["sinfo", "-o", "%P %a %l %D %t %N"], timeout=10)
        print(result.stdout.rstrip() or result.stderr.rstrip())
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


# -- demo ---------------------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo", help="bring the local cluster up and run a short job array through it",
        description="Brings the local cluster up if needed, submits a small job array through "
        "the bridge's command runner and prints each element's sacct record.",
    )
    demo.add_argument("--elements", type=int, default=6, help="array size (default 6)")
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from bridge.cluster import LocalCluster, load_spec
    from bridge.smoke import run_smoke_array

    cluster = LocalCluster(load_spec())
    cluster.up()
    rows = run_smoke_array(cluster.runner, args.elements, progress=print)
    failed = [r for r in rows if r.state != "COMPLETED"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
