"""The JSON Schema of an experiment declaration, written from bridge.declaration_fields' TOP_FIELDS and BLOCK_FIELDS.

The kinds a declaration adds to bridge.toml_table's (algorithm, json, environment,
slots, inputs, outputs, names, blocks) are shaped here from the same constants
the checks use; the bounds that come from bridge.toml's [limits] are those of
the Limits given (the defaults unless `beat-bridge schema experiment --config`).
What needs the database -- the queue and environment exist, the queue offers
the environment, required_slots within the queue's share -- or the whole graph
(references between blocks, cycles), or the JSON text's size and nesting, stays
with the loader.
"""

from __future__ import annotations

from typing import Any

from bridge import declaration_fields as fields
from bridge.config import Limits
from bridge.schema import TOML_KINDS, Kinds, anchored, document, table
from bridge.schema import text as _name
from bridge.toml_table import Field
from bridge.values import INT32_MAX

JSON_TYPES = ["object", "array", "string", "number", "boolean", "null"]


def _source(keys: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"type": "object", "properties": keys, "required": list(keys), "additionalProperties": False}


def kinds(limits: Limits) -> Kinds:
    """The declaration's kinds, bounded by these limits."""
    dataset_size = {"type": "integer", "minimum": 1, "maximum": min(limits.max_dataset_size, INT32_MAX),
                    "description": "data units (bridge.toml [limits] max_dataset_size)"}

    def inputs(f: Field, k: Kinds) -> dict[str, Any]:
        sources = [_source({"dataset": _name(f.max_length), "size": dataset_size}),
                   _source({"block": _name(f.max_length), "output": _name(f.max_length)}),
                   _source({"cache": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                                      "description": "a BEAT cache file's hash (BEAT algorithm blocks only)"}})]
        return {"type": "object", "propertyNames": _name(f.max_length), "additionalProperties": {"anyOf": sources}}

    return {
        **TOML_KINDS,
        "algorithm": lambda f, k: {"type": "string", "pattern": anchored(f.pattern), "maxLength": f.max_length},
        "json": lambda f, k: {"type": "object", "additionalProperties": {"$ref": "#/$defs/json"}},
        "environment": lambda f, k: {"anyOf": [_name(f.max_length), table(f.fields, k)]},
        "slots": lambda f, k: {"type": "integer", "minimum": 1, "maximum": min(limits.max_required_slots, INT32_MAX)},
        "inputs": inputs,
        "outputs": lambda f, k: {"type": "array", "minItems": 1, "uniqueItems": True, "items": _name(f.max_length)},
        "names": lambda f, k: {"type": "array", "items": _name(f.max_length)},
        "blocks": lambda f, k: {"type": "object", "minProperties": 1, "maxProperties": limits.max_blocks,
                                "propertyNames": _name(f.max_length), "additionalProperties": table(f.fields, k)},
    }


def experiment_schema(limits: Limits | None = None) -> dict[str, Any]:
    """The schema of a declaration (JSON, or TOML with the same keys)."""
    json_value = {"type": JSON_TYPES, "items": {"$ref": "#/$defs/json"},
                  "additionalProperties": {"$ref": "#/$defs/json"},
                  "$comment": "plain JSON: no TOML date or time"}
    return document("experiment declaration", "beat-slurm-bridge: an experiment declaration for `beat-bridge "
                    "experiments add` (a DAG of blocks, each an algorithm run in splits on a queue)",
                    fields.TOP_FIELDS, kinds(limits or Limits()), {"json": json_value})
