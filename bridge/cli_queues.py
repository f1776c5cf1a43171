"""`beat-bridge queues check|sync`: the admins' queue -> partition mapping (queues.toml) against the cluster."""

from __future__ import annotations

import argparse
import json
import sys
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
    "an unreadable slurmdbd is a 'could not check' finding); each account bridge.toml's [accounts] names, the same "
    "way for every queue (exists, associated, allowed by the partition); the script each queue's template renders "
    "for a sample split passes `bash -n` and `sbatch --test-only` (which submits nothing). Exit 0 when clean, "
    "1 on any finding or when scontrol/sinfo cannot be read."
)


DIFF_DESCRIPTION = (
    "Compare the three places a queue mapping lives and print one line per difference: queues.toml (the file), "
    "the database's Queue rows (what the submitter renders from, written by `queues sync`) and the cluster "
    "(does each partition exist, `scontrol show partition`). Compared per queue: partition, memory_limit, "
    "time_limit, cores_per_slot, max_slots_per_user, account, qos, extra_directives, template and "
    "environments. Exit 0 when all three agree, 1 on any difference or when the cluster cannot be read."
)

SYNC_DESCRIPTION = (
    "Make the database's queues say what queues.toml says (add, update, remove), then record the Slurm nodes. "
    "BEAT's rule: a queue that live experiments use (a block not final, of an experiment not final) is "
    "neither removed nor narrowed (another partition; a smaller memory_limit, time_limit, cores_per_slot or "
    "max_slots_per_user; an environment removed): the sync is refused, nothing changes, and the blocks are "
    "listed, unless --force. Either way jobs already submitted keep the mapping version of their first array "
    "(its partition, limits and extras); new jobs take the new one. --dry-run prints the changes, writes nothing."
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
    diff = _action(actions, "diff", queues_diff,
                   "compare queues.toml, the database's queues and the cluster's partitions; exit 1 on any "
                   "difference")
    diff.description = DIFF_DESCRIPTION
    diff.add_argument("--json", action="store_true",
                      help='print one JSON object: {"file", "differences": [{queue, key, file, database, '
                      'problem}], "cluster_error"}')
    sync = _action(actions, "sync", queues_sync,
                   "write queues.toml's queues into the database (refusing to remove or narrow a queue live "
                   "experiments use) and the Slurm nodes into Worker rows")
    sync.description = SYNC_DESCRIPTION
    sync.add_argument("--dry-run", action="store_true", help="print what sync would change; change nothing")
    sync.add_argument("--force", action="store_true",
                      help="remove or narrow queues live experiments use anyway, printing what it affects")
    for parser in (check, diff, sync):
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
        findings = lint_mapping(config.queues, load_errors, make_backend(config).client, dirs, config.accounts)
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


def queues_diff(args: argparse.Namespace) -> int:
    from bridge.app import open_app
    from bridge.queue_sync import diff_queues
    from bridge.queues import database_states, file_states

    app = open_app(args.config)
    partitions, error = _partition_names(app.client)
    with app.sessions() as session:
        database = database_states(session)
    file = file_states(app.config.queues, templates_dirs(app.config))
    found = diff_queues(file, database, partitions)
    if args.json:
        print(json.dumps({"file": str(app.config.queues_file), "differences": [d.as_dict() for d in found],
                          "cluster_error": error}, indent=2))
    else:
        for difference in found:
            print(f"{app.config.queues_file}: {difference.line()}")
        if error:
            print(f"cluster not read (partitions not compared): {error}")
        if not found:
            print(f"{app.config.queues_file}: {len(file)} queues, the database agrees"
                  + ("" if error else ", every partition exists"))
    return 1 if found or error else 0


def queues_sync(args: argparse.Namespace) -> int:
    from bridge.app import open_app
    from bridge.queues import SyncRefused, read_cluster, sync_queues, sync_workers

    app = open_app(args.config)
    view = None if args.dry_run else read_cluster(app.client)
    with app.write_sessions() as session:
        try:
            plan = sync_queues(session, app.config.queues, templates_dirs=templates_dirs(app.config),
                               force=args.force, dry_run=args.dry_run)
        except SyncRefused as e:
            print(f"{app.config.queues_file}: {e}", file=sys.stderr)
            return 1
        if view is not None:
            sync_workers(session, view.nodes)
    if args.dry_run:
        print("dry run: what `queues sync` would change (nothing is written)")
    for change in plan:
        print(change.line()
              + (" [refused without --force]" if args.dry_run and change.refused else
                 " [forced]" if change.refused else ""))
        for use in change.affected if change.refused else ():
            print(f"    {use.text()}")
    if args.dry_run:
        print(f"dry run: {len(plan)} queue change(s)"
              + (f"; {sum(c.refused for c in plan)} refused without --force" if any(c.refused for c in plan)
                 else ""))
    else:
        assert view is not None
        print(f"synced {len(app.config.queues)} queues ({len(plan)} changed) and {len(view.nodes)} workers")
    return 0


def templates_dirs(config) -> tuple[Path, ...]:
    """Where a queue's template is looked for, before the shipped templates/."""
    return (config.templates_dir,) if config.templates_dir else ()


def _partition_names(client) -> tuple[set[str] | None, str | None]:
    """The cluster's partition names, or None and why they could not be read."""
    try:
        return {p["PartitionName"] for p in client.partitions() if "PartitionName" in p}, None
    except BridgeError as e:
        return None, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
