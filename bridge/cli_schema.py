"""`beat-bridge schema NAME`: print the JSON Schema of queues.toml, bridge.toml or an experiment declaration."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

Action = Callable[..., argparse.ArgumentParser]  # bridge.cli's _action: one sub-command with its handler
NAMES = ("bridge", "experiment", "queues")  # sorted(bridge.schema.SCHEMAS), without importing it for argparse

EPILOG = """\
The schema is written from the tables the loader itself reads by, so an editor
refuses what `beat-bridge` would refuse (wrong type, unknown or missing key,
out of range, bad name) while you type, and completes keys with their
descriptions. Rules between keys, files, the database and Slurm stay with the
loader and `beat-bridge queues check`. See docs/schemas.md.

Save it beside the file it checks, once per upgrade of the bridge:
  beat-bridge schema queues > /etc/beat-bridge/queues.schema.json

taplo (and VS Code's "Even Better TOML", which runs taplo): a first line
  #:schema ./queues.schema.json
in queues.toml (relative to that file), or in .taplo.toml:
  [[rule]]
  include = ["**/queues.toml"]
  schema.path = "./queues.schema.json"
then `taplo check queues.toml` validates from the command line.

VS Code, JSON declarations (a "$schema" key would be refused by the loader):
settings.json: "json.schemas": [{"fileMatch": ["*.experiment.json"],
  "url": "./experiment.schema.json"}]
"""


def add_schema(commands: argparse._SubParsersAction, _action: Action) -> None:
    parser = _action(commands, "schema", schema_command,
                     "print the JSON Schema (draft 2020-12) of queues.toml, bridge.toml or an experiment "
                     "declaration, for editors")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("name", choices=NAMES, metavar="NAME", help=f"which file: {', '.join(NAMES)}")
    parser.add_argument("--config", type=Path, default=None,
                        help="experiment only: take required_slots, blocks and dataset bounds from this "
                        "bridge.toml's [limits] (default: the built-in limits)")


def schema_command(args: argparse.Namespace) -> int:
    from bridge.schema import SCHEMAS
    from bridge.schema_declaration import experiment_schema

    if args.name == "experiment" and args.config is not None:
        from bridge.config import load_config

        schema = experiment_schema(load_config(args.config).limits)
    else:
        schema = SCHEMAS[args.name]()
    json.dump(schema, sys.stdout, indent=2)  # ASCII only: control characters of the patterns stay escaped
    sys.stdout.write("\n")
    return 0
