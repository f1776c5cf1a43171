"""JSON Schemas (draft 2020-12) of the files admins and users edit, written from the loaders' own Field tables.

bridge.toml and queues.toml are read by `Field` tables (bridge.toml_table); a
declaration's keys are a Field table too (bridge.declaration_fields). Each
schema is generated from those tables at call time, so it cannot drift from
what the loader accepts: editors (taplo, VS Code) check and complete as admins
type. What a schema cannot say -- rules between two keys (poll.max_interval >=
min_interval), the filesystem, the database, Slurm -- stays with the loader;
docs/schemas.md lists it.

Regular expressions are written so that Python's `re`, ECMAScript (VS Code) and
Rust's `regex` (taplo) read them alike: explicit character classes, no \\w, no
look-around, no \\p{...}.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from bridge.sbatch_options import BRIDGE_OPTIONS, clashing_names
from bridge.toml_table import MISSING, Field
from bridge.values import (
    _INVISIBLE,  # the categories has_control refuses: one definition
    INT32_MAX,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@functools.lru_cache(maxsize=1)
def invisible_class() -> str:
    """A regex character class of every character `bridge.values.has_control` refuses, as literal ranges.

    Surrogates are left out: a TOML file cannot hold one, and a regex in an editor cannot name a lone one.
    """
    ranges: list[tuple[int, int]] = []
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(chr(code)) not in _INVISIBLE:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "[" + "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges) + "]"


def text_def() -> dict[str, Any]:
    """What the loaders call text: a string with a non-blank character and no control or invisible one."""
    return {"type": "string", "pattern": r"\S",
            "not": {"type": "string", "pattern": invisible_class()},
            "$comment": "a non-empty string without control characters (bridge.values.has_control)"}


def anchored(pattern: re.Pattern) -> str:
    """The pattern as the loader applies it: one it uses with `match` starts with ^; any other must match whole."""
    p = pattern.pattern
    return p if p.startswith("^") else f"^(?:{p})$"


TEXT = {"$ref": "#/$defs/text"}


def text(max_length: int | None = None, pattern: re.Pattern | None = None) -> dict[str, Any]:
    """Text, bounded. The reference sits inside allOf: draft-07 validators (taplo's) ignore a $ref's siblings."""
    out: dict[str, Any] = {"allOf": [TEXT]}
    if max_length is not None:
        out["maxLength"] = max_length
    if pattern is not None:
        out["pattern"] = anchored(pattern)
    return out


def _text(f: Field, kinds: Kinds) -> dict[str, Any]:
    return text(f.max_length, f.pattern)


def _number(f: Field, kind: str, low: float, high: float) -> dict[str, Any]:
    """The bounds the Table getter applies when the Field names none (bridge.toml_table.Table.integer/number)."""
    return {"type": kind, "minimum": low if f.minimum is None else f.minimum,
            "maximum": high if f.maximum is None else f.maximum}


def _name_version(f: Field, kinds: Kinds) -> dict[str, Any]:
    """'name-version' (split at the last '-', each part bounded like the table form's fields) or {name, version}."""
    name, version = (g.max_length for g in f.fields)
    string = {"allOf": [TEXT, {"pattern": r"^.*\S.*-[^-]*[^\s-][^-]*$"},
                        {"pattern": f"^.{{0,{name}}}-[^-]*$"}, {"pattern": f"-[^-]{{0,{version}}}$"}]}
    return {"anyOf": [string, table(f.fields, kinds)]}


def _map(f: Field, kinds: Kinds) -> dict[str, Any]:
    """Free keys (queue names, environment variables), each value one `item`; `minimum` entries at least."""
    names = text(f.max_length) if f.key_pattern is None else {"pattern": anchored(f.key_pattern)}
    if f.key_pattern is not None and f.max_length is not None:
        names["maxLength"] = f.max_length
    out = {"type": "object", "propertyNames": names, "additionalProperties": field(f.item, kinds)}
    if f.minimum:
        out["minProperties"] = int(f.minimum)
    return out


def sets_option(names: frozenset[str]) -> str:
    """A pattern that an extra directive setting one of the long options `names` matches (`--name`, `--name=...`)."""
    assert all(re.fullmatch(r"[A-Za-z0-9-]+", n) for n in names)  # nothing to escape (`\\-` is an error in ECMAScript)
    return r"^\s*--(?:" + "|".join(sorted(names)) + r")(?:=|\s*$)"


def _directive(f: Field, kinds: Kinds) -> dict[str, Any]:
    """One long option (the field's pattern) that sets no option the bridge sets on every array.

    bridge.sbatch_options.clash is the loader's rule; the names it refuses are a finite set
    (clashing_names), written out here. The queue's own account/qos: see queues_schema.
    """
    out = text(f.max_length, f.pattern)
    out["not"] = {"pattern": sets_option(clashing_names()), "$comment": "an option the bridge sets, or a prefix of one"}
    return out


Kind = Callable[[Field, "Kinds"], dict[str, Any]]
Kinds = dict[str, Kind]
TOML_KINDS: Kinds = {
    "text": _text,
    "path": _text,
    "token": lambda f, k: {"type": "string", "pattern": anchored(f.pattern)},
    "choice": lambda f, k: {"enum": list(f.choices)},
    "integer": lambda f, k: _number(f, "integer", 1, INT32_MAX),
    "number": lambda f, k: _number(f, "number", 0.0, 86400.0),
    "flag": lambda f, k: {"type": "boolean"},
    "table": lambda f, k: table(f.fields, k),
    "list": lambda f, k: {"type": "array", "items": field(f.item, k)},
    "map": _map,
    "name-version": _name_version,
    "directive": _directive,
}


def field(f: Field | None, kinds: Kinds = TOML_KINDS) -> dict[str, Any]:
    """The schema of one Field: its kind's shape, then its description and default."""
    assert f is not None
    out = dict(kinds[f.kind](f, kinds))
    if f.description:
        out["description"] = f.description
    if f.default is not MISSING and f.default is not None and f.kind not in ("table", "map"):
        out["default"] = f.default
    return out


def table(fields: tuple[Field, ...], kinds: Kinds = TOML_KINDS) -> dict[str, Any]:
    """A table: its keys, the required ones, no others; `required_when` as if/then."""
    out: dict[str, Any] = {"type": "object", "properties": {f.name: field(f, kinds) for f in fields}}
    required = [f.name for f in fields if f.required]
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    conditions = [{"if": {"properties": {f.required_when[0]: {"const": f.required_when[1]}},
                          "required": [f.required_when[0]]},
                   "then": {"required": [f.name]}} for f in fields if f.required_when]
    if conditions:
        out["allOf"] = conditions
    return out


def document(title: str, description: str, fields: tuple[Field, ...], kinds: Kinds = TOML_KINDS,
             defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A whole schema: the top table's keys first (what `| head` shows), shared definitions last."""
    return {"$schema": DIALECT, "title": title, "description": description, **table(fields, kinds),
            "$defs": {"text": text_def(), **(defs or {})}}


def queues_schema() -> dict[str, Any]:
    from bridge.queues_config import QUEUES_FIELD, SETS_OPTION

    schema = document("queues.toml", "beat-slurm-bridge: BEAT queues and the Slurm partition and limits each maps "
                      "to (`beat-bridge queues check` compares them with the cluster)", (QUEUES_FIELD,))
    queue = schema["properties"]["queues"]["additionalProperties"]
    queue.setdefault("allOf", []).extend(_set_by_queue(key) for key in SETS_OPTION)
    return schema


def _set_by_queue(key: str) -> dict[str, Any]:
    """A queue that sets `account` (or `qos`) makes the bridge pass --account: no extra directive may set it too."""
    names = clashing_names(BRIDGE_OPTIONS | {key}) - clashing_names()
    return {"if": {"required": [key]}, "then": {"properties": {"extra_directives": {"items": {
        "not": {"pattern": sets_option(names)}, "$comment": f"the bridge sets --{key} from the queue's {key}"}}}}}


def bridge_schema() -> dict[str, Any]:
    from bridge.config import BRIDGE_FIELDS

    return document("bridge.toml", "beat-slurm-bridge's configuration: database, Slurm access, shared "
                    "directories, timeouts and limits", BRIDGE_FIELDS)


def experiment_schema(limits: Any = None) -> dict[str, Any]:
    from bridge.schema_declaration import experiment_schema as build

    return build(limits)


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "queues": queues_schema, "bridge": bridge_schema, "experiment": experiment_schema,
}
