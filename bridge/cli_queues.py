"""`beat-bridge queues check|sync`: the admins' queue -> partition mapping (queues.toml) against the cluster."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from bridge.errors import BridgeError, ConfigError

Action = Callable[..., argparse.ArgumentParser]  # bridge.cli's _action: one sub-command with its handler

CHECK_DESCRIPTION = (
    "Check queues.toml against the live cluster and print one line per finding: the queue and key, its value, "
    "what is wrong and what the cluster allows. Checked: what the loader refuses (extra directives that set "
    "an option the bridge sets, under any spelling: -t/--time, --mem-per-cpu, --part=..., --parsable...); "
    "each queue against `scontrol show partition` (State UP, MaxTime, MaxMemPerNode, MaxMemPerCPU, "
    "MaxCPUsPerNode, AllowAccounts/DenyAccounts, AllowQos/DenyQos) and the nodes' memory and CPUs; "
    "the account and QOS exist and the bridge's Slurm user has an association allowing them (`sacctmgr show`; "
    "an unreadable slurmdbd is a 'could not check' finding); the script each queue's template renders for a "
    "sample split passes `bash -n` and `sbatch --test-only` (which submits nothing). Exit 0 when clean, "
    "1 on any finding or when scontrol/sinfo cannot be read."
)


def add_queues(commands: argparse._SubParsersAction, _action: Action, config_option: Callable) -> None:
    queues = commands.add_parser("queues", help="the admins' queue -> partition mapping (queues.toml)")
    actions = queues.add_subparsers(title="actions", metavar="ACTION")
    check = _action(actions, "check", queues_check,
                    "check queues.toml against the live partitions, nodes, accounts, QOS and sbatch; "
                    "exit 1 on any problem")
    check.description = CHECK_DESCRIPTION
    check.add_argument("--json", action="store_true",
                       help='print one JSON object: {"file", "queues", "clean", "findings": [{queue, key, value, '
                       'problem, allowed, rule}], "error"}')
    sync = _action(actions, "sync", queues_sync,
                   "load the queues into the database and the Slurm nodes into Worker rows")
    for parser in (check, sync):
        config_option(parser)


def queues_check(args: argparse.Namespace) -> int:
    from bridge.app import with_local_cluster
    from bridge.backend import make_backend
    from bridge.config import load_config, resolve_config_path
    from bridge.queue_lint_run import lint_mapping

    load_errors: dict[str, ConfigError] = {}
    config = with_local_cluster(load_config(resolve_config_path(args.config), queue_errors=load_errors))
    dirs = (config.templates_dir,) if config.templates_dir else ()
    count = len(config.queues) + len(load_errors)
    try:
        findings = lint_mapping(config.queues, load_errors, make_backend(config).client, dirs)
    except BridgeError as e:
        if not args.json:
            raise
        _print_json(config.queues_file, count, [], str(e))
        return 1
    if args.json:
        _print_json(config.queues_file, count, [f.as_dict() for f in findings], None)
    for finding in [] if args.json else findings:
        print(f"{config.queues_file}: {finding.line()}")
    if not findings and not args.json:
        print(f"{config.queues_file}: {count} queues fit the cluster (partitions, nodes, accounts and QOS; "
              "each script passes bash -n and sbatch --test-only)")
    return 1 if findings else 0


def _print_json(path: Path, count: int, findings: list[dict], error: str | None) -> None:
    print(json.dumps({"file": str(path), "queues": count, "clean": not findings and error is None,
                      "findings": findings, "error": error}, indent=2, default=str))


def queues_sync(args: argparse.Namespace) -> int:
    from bridge.app import open_app
    from bridge.queues import read_cluster, sync_queues, sync_workers

    app = open_app(args.config)
    view = read_cluster(app.client)
    with app.write_sessions() as session:
        sync_queues(session, app.config.queues)
        sync_workers(session, view.nodes)
    print(f"synced {len(app.config.queues)} queues and {len(view.nodes)} workers")
    return 0
