"""The JSON Schemas (bridge.schema): shipped examples pass them; they refuse what the loaders refuse, where they can.

Three checks: every example the project ships validates against its schema; every
declaration, bridge.toml and queues.toml case of the hostile-input corpus (which
tests/test_bad_inputs.py proves the loader refuses) is refused by the schema too,
except the cases listed in BEYOND_A_SCHEMA with the reason; and mutations made from
the Field tables themselves (each key: wrong type, out of range, too long, bad pattern,
missing, unknown beside it) are refused by both the loader and the schema.
"""

from __future__ import annotations

import functools
import json
import math
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from test_bad_inputs import BAD, CASES, Workspace, make_workspace

from bridge.cli import main
from bridge.config import BRIDGE_FIELDS, Limits, load_config
from bridge.db import create_session_factory
from bridge.declaration import load_experiment
from bridge.declaration_fields import BLOCK_FIELDS, TOP_FIELDS, DeclarationError
from bridge.errors import ConfigError
from bridge.examples.demo_experiments import declarations
from bridge.queues_config import QUEUE_FIELDS, QUEUES_FIELD
from bridge.sbatch_options import BRIDGE_OPTIONS, SHORT_FORMS, clash, clashing_names
from bridge.schema import SCHEMAS
from bridge.toml_table import MISSING, Field, parse_toml
from bridge.values import JsonError, load_json

REPO = Path(__file__).resolve().parent.parent
SCHEMA_OF = {"declarations": "experiment", "bridge": "bridge", "queues": "queues"}
CORPUS = [case for case in CASES if case.split("/")[0] in SCHEMA_OF]

# Refused before any schema applies: the text is not JSON or TOML the readers accept.
UNREADABLE = {
    "declarations/declaration.yaml": "neither .json nor .toml",
    "declarations/duplicate-block.json": "a duplicate key (json.loads would keep the last)",
    "declarations/duplicate-parameter.json": "a duplicate key",
    "declarations/duplicate-top-key.json": "a duplicate key",
    "declarations/empty.json": "not JSON",
    "declarations/not-json.json": "not JSON",
    "declarations/not-utf8.json": "not UTF-8",
    "declarations/not-utf8.toml": "not UTF-8",
    "declarations/parameters-deep.json": "nested beyond what the reader takes",
    "bridge/bridge-not-utf8.toml": "not UTF-8",
    "queues/queues-not-utf8.toml": "not UTF-8",
}
# Refused by the loader, accepted by the schema: what a JSON Schema cannot state.
BEYOND_A_SCHEMA = {
    "declarations/name-surrogate.json": "a lone surrogate: no editor's regex can name one (TOML cannot hold one)",
    "declarations/parameter-infinity.json": "Infinity is not JSON; Python reads it as a number",
    "declarations/parameter-nan.json": "NaN compares false with every bound",
    "declarations/parameter-nan.toml": "NaN compares false with every bound",
    "declarations/parameters-nested-100.json": "nesting depth of [limits] max_parameters_depth",
    "declarations/size-float.json": "4.0: JSON Schema's data model counts a number without fraction as an integer",
    "bridge/timeout-nan.toml": "NaN compares false with every bound (taplo refuses it, Python's jsonschema not)",
    "bridge/metrics-textfile-no-directory.toml": "the filesystem: the textfile's directory must exist",
    "bridge/spool-is-file.toml": "the filesystem",
    "bridge/spool-parent-is-file.toml": "the filesystem",
    "bridge/spool-unwritable.toml": "the filesystem",
    **{f"bridge/url-{name}.toml": "the database URL: parsed, its driver imported, its file or server reached"
       for name in ("bad-port", "closed-port", "directory", "empty-scheme", "memory-bare", "memory",
                    "missing-driver", "not-a-database", "not-a-url", "parent-is-file", "unknown-dialect")},
    "bridge/beat-prefix-not-a-prefix.toml": "the filesystem: beat_prefix must hold algorithms/",
    **{f"declarations/beat-{name}.json": "the BEAT prefix: the algorithm's declaration (its inputs, outputs, "
       "parameters and dataformats) is read from beat_prefix, a BEAT cache file's header from cache_root"
       for name in ("cache-missing", "dataformat-mismatch", "outputs-not-the-algorithms", "reads-callable",
                    "unknown-algorithm", "unknown-parameter")},
    "queues/resubmit-to-unknown.toml": "resubmit_to names another queue of the file: a schema checks no references "
    "between keys",
    "queues/directive-repeated.toml": "two directives that set one option: a schema compares whole items "
    "(uniqueItems), not the option names inside them",
    **{f"queues/template-{name}.toml": "the template file: found inside the templates directories, rendered"
       for name in ("directory", "dotdot", "etc-passwd", "filter-after-quote", "include-unquoted", "sandbox",
                    "syntax", "undefined", "unquoted-in-branch", "unquoted")},
}


@functools.cache
def validator(name: str) -> Draft202012Validator:
    schema = SCHEMAS[name]()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(name: str, data: Any) -> list[str]:
    return [error.message for error in validator(name).iter_errors(data)]


def read(path: Path, text: bytes | None = None) -> Any:
    """A file as the loaders read it (JSON with duplicate keys refused, TOML), without any other check."""
    data = path.read_bytes() if text is None else text
    if path.suffix == ".json":
        return load_json(data)
    if path.suffix == ".toml":
        return parse_toml(data)
    raise ValueError(f"{path}: neither .json nor .toml")


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    for name in SCHEMAS:
        assert validator(name).schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_shipped_examples_validate() -> None:
    assert errors("bridge", read(REPO / "config" / "bridge.toml")) == []
    assert errors("queues", read(REPO / "config" / "queues.toml")) == []
    assert errors("experiment", read(REPO / "config" / "example-experiment.json")) == []
    for declaration in declarations():  # the demo's
        assert errors("experiment", declaration) == []
    good = BAD / "good"
    assert errors("queues", read(good / "queues.toml")) == []
    bridge = (good / "bridge.toml").read_bytes().replace(b"@DB@", b"sqlite:///bridge.sqlite")
    assert errors("bridge", parse_toml(bridge)) == []
    experiment = (good / "experiment.json").read_bytes().replace(b"@NAME@", b"good")
    assert errors("experiment", load_json(experiment)) == []


def test_the_lists_name_corpus_cases() -> None:
    assert set(UNREADABLE) <= set(CORPUS) and set(BEYOND_A_SCHEMA) <= set(CORPUS)
    assert not set(UNREADABLE) & set(BEYOND_A_SCHEMA)
    assert len(CORPUS) >= 80


@pytest.mark.parametrize("case", CORPUS)
def test_schema_refuses_the_corpus_case_unless_beyond_a_schema(case: str) -> None:
    path = BAD / case
    text = path.read_bytes().replace(b"@DB@", b"sqlite:///bridge.sqlite")
    if case in UNREADABLE:
        with pytest.raises((JsonError, tomllib.TOMLDecodeError, ValueError)):
            read(path, text)
        return
    found = errors(SCHEMA_OF[case.split("/")[0]], read(path, text))
    if case in BEYOND_A_SCHEMA:
        assert found == [], f"{case} is listed as beyond a schema, but the schema refuses it: {found}"
    else:
        assert found, f"the schema accepts {case}, which the loader refuses"


# -- mutations made from the Field tables: the loader and the schema refuse each ----------------------------


def _not_matching(f: Field) -> str:
    """A string the field's pattern refuses, as the loader applies it (a token whole, others from the start)."""
    matches = f.pattern.fullmatch if f.kind == "token" else f.pattern.match
    return next(v for v in ("a b", "UPPER", "a\\b", "pkg.module", "#x") if not matches(v))


def bad_values(f: Field) -> Iterator[tuple[str, Any]]:
    """(why, value) that the loader must refuse for this field."""
    limits = Limits()
    yield "wrong type", "x" if f.kind in ("list", "integer", "number", "flag", "table", "map", "slots") else [1]
    if f.kind == "slots":
        yield from (("zero", 0), ("over [limits]", limits.max_required_slots + 1), ("a float", 1.5))
    if f.kind in ("outputs", "names"):
        yield from (("a control character", ["o\x1bk"]), ("too long", ["a" * (f.max_length + 1)]))
    if f.kind == "outputs":
        yield from (("empty", []), ("repeated", ["out", "out"]))
    if f.kind == "environment":
        yield from (("no version", {"name": "Python"}), ("too long", "a" * (f.max_length + 1)))
    if f.kind == "inputs":
        yield from (("no size", {"in": {"dataset": "numbers"}}), ("size 0", {"in": {"dataset": "numbers", "size": 0}}),
                    ("a third form", {"in": {"file": "x"}}))
    if f.kind == "algorithm":
        yield "too long", "a" * f.max_length + ":f"
    if f.kind in ("integer", "number"):
        low = (1 if f.kind == "integer" else 0.0) if f.minimum is None else f.minimum  # Table's own bounds
        high = (2**31 - 1 if f.kind == "integer" else 86400.0) if f.maximum is None else f.maximum
        yield "below its minimum", low - 1
        yield "above its maximum", high + 1
        if f.kind == "integer":
            yield "a float", 1.5
    if f.kind == "choice":
        yield "not a choice", "nope"
    if f.kind in ("text", "path", "token", "algorithm") and f.pattern is not None:
        yield "not matching its pattern", _not_matching(f)
    if f.max_length is not None and f.kind == "text":
        yield "too long", "a" * (f.max_length + 1)
    if f.kind in ("text", "path"):
        yield "a control character", "a\x1bb"
        yield "blank", " "


def mutations(data: dict[str, Any], fields: tuple[Field, ...], where: tuple[str, ...] = ()
              ) -> Iterator[tuple[str, dict[str, Any]]]:
    """Copies of data, each with one key of one table made bad (data holds every table, so each is reached)."""
    table = _at(data, where)
    yield f"{'.'.join(where)}: an unknown key", _with(data, where, "no_such_key", 1)
    for f in fields:
        key = ".".join((*where, f.name))
        if f.required:
            yield f"{key}: missing", _with(data, where, f.name, MISSING)
        for why, value in bad_values(f):
            yield f"{key}: {why} {value!r}", _with(data, where, f.name, value)
        if f.kind == "table" and isinstance(table.get(f.name), dict):
            yield from mutations(data, f.fields, (*where, f.name))


def _at(data: dict[str, Any], where: tuple[str, ...]) -> dict[str, Any]:
    for key in where:
        data = data[key]
    return data


def _with(data: dict[str, Any], where: tuple[str, ...], key: str, value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    table = _at(copy, where)
    if value is MISSING:
        del table[key]
    else:
        table[key] = value
    return copy


def toml_text(data: dict[str, Any], where: tuple[str, ...] = ()) -> str:
    """A small TOML writer for the tests' tables: keys quoted, scalars first, then sub-tables."""
    lines = [f"[{'.'.join(map(json.dumps, where))}]"] if where else []
    lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    lines += [toml_text(v, (*where, k)) for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else "inf" if v > 0 else "-inf"
    if isinstance(v, list):
        return "[" + ", ".join(_value(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(i)}" for k, i in v.items()) + "}"
    return json.dumps(v)


@pytest.fixture(scope="module")
def toml_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """A directory with queues.toml, and every table of bridge.toml and of a queue filled in (all valid)."""
    root = tmp_path_factory.mktemp("schema")
    bridge = read(REPO / "config" / "bridge.toml")
    bridge["database"]["url"] = f"sqlite:///{root / 'bridge.sqlite'}"
    bridge["ssh"] = {"host": "login", "port": 22}
    bridge["slurm"]["env"] = {"SLURM_TIME_FORMAT": "standard"}
    queues = read(REPO / "config" / "queues.toml")
    queues["queues"]["default"].update(account="lab", qos="normal", extra_directives=["--nice=1"])
    (root / "queues.toml").write_text(toml_text(queues))
    return root, bridge, queues


def _loader_refuses(path: Path, text: str) -> bool:
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError:
        return True
    return False


def test_every_bridge_toml_mutation_is_refused_by_loader_and_schema(toml_base) -> None:
    root, bridge, _ = toml_base
    assert not _loader_refuses(root / "bridge.toml", toml_text(bridge)) and errors("bridge", bridge) == []
    cases = list(mutations(bridge, BRIDGE_FIELDS))
    cases.append(("runner ssh without [ssh]", {k: v for k, v in _with(bridge, (), "runner", "ssh").items()
                                               if k != "ssh"}))
    assert len(cases) > 100
    for what, data in cases:
        assert _loader_refuses(root / "bridge.toml", toml_text(data)), f"the loader accepts {what}"
        assert errors("bridge", data), f"the schema accepts {what}"


def test_every_queues_toml_mutation_is_refused_by_loader_and_schema(toml_base) -> None:
    root, bridge, queues = toml_base
    config = root / "bridge-q.toml"
    config.write_text(toml_text({**bridge, "queues": "mutated.toml"}))
    cases = list(mutations(queues, QUEUE_FIELDS, ("queues", "default")))
    for name in ("a b", "q" * (QUEUES_FIELD.max_length + 1)):
        cases.append((f"queue name {name!r}", {"queues": {name: queues["queues"]["default"]}}))
    cases += [("no queue", {"queues": {}}), ("environment without version", _with(
        queues, ("queues", "default"), "environments", ["python"])), ("a '#SBATCH' directive", _with(
            queues, ("queues", "default"), "extra_directives", ["#SBATCH --nice=1"]))]
    # The clash rule (bridge.sbatch_options): each spelling of an option the bridge sets, and the queue's own
    # account and qos (the base queue sets both).
    cases += [(f"extra directive {d!r}", _with(queues, ("queues", "default"), "extra_directives", ["--nice=1", d]))
              for d in ("-t 10", "--time=10", "--part=debug", "--mem-per-cpu=100", "--requeue", "--wait",
                        "--parsable", " --cpus=2 ", "--acc=other", "--qos=high")]
    for what, data in cases:
        assert _loader_refuses(root / "mutated.toml", toml_text(data)) and _loader_refuses(
            config, config.read_text()), f"the loader accepts {what}"
        assert errors("queues", data), f"the schema accepts {what}"


def _directive_refused(data: dict[str, Any], directive: str) -> bool:
    data["queues"]["q"]["extra_directives"] = [directive]
    return bool(errors("queues", data))


# (value, accepted): what the loader took before [metrics] became a Field table, and takes now.
_LISTENS = (("127.0.0.1:9464", True), ("[::1]:9464", True), ("metrics.example.org:65535", True), ("h:1", True),
            ("h:00080", True), ("h:0", False), ("h:00000", False), ("h:65536", False), ("h:99999", False),
            ("h:000080", False), ("localhost", False), (":9464", False), ("[::1]", False), ("-h:80", False),
            ("h:80 ", False))
_TEXTFILES = (("bridge.prom", True), ("sub/bridge.prom", True), ("..prom", True), ("bridge.prom/", True),
              (".prom", False), ("sub/.prom", False), ("bridge.txt", False), ("bridge.prom.txt", False),
              ("bridge.PROM", False))


@pytest.mark.parametrize(("key", "value", "accepted"),
                         [*(("listen", *v) for v in _LISTENS), *(("textfile", *v) for v in _TEXTFILES)])
def test_the_schema_accepts_a_metrics_value_exactly_when_the_loader_does(toml_base, key: str, value: str,
                                                                         accepted: bool) -> None:
    """[metrics]: the port range and the .prom name are patterns, so the schema and the loader agree on each
    (the textfile's directory, which exists here, is the loader's alone: a corpus case beyond a schema)."""
    root, bridge, _ = toml_base
    (root / "sub").mkdir(exist_ok=True)
    data = _with(bridge, ("metrics",), key, value)
    assert _loader_refuses(root / "bridge-metrics.toml", toml_text(data)) is not accepted
    assert (errors("bridge", data) == []) is accepted


@pytest.mark.parametrize("sets", [(), ("account",), ("qos",), ("account", "qos")])
def test_the_schema_refuses_a_directive_exactly_when_the_clash_rule_does(sets: tuple[str, ...]) -> None:
    """Every name the rule refuses (and each one letter longer, and sbatch's long options named by its short
    forms), spelt three ways, on a queue with and without account/qos: the schema agrees with `clash`."""
    names = clashing_names(BRIDGE_OPTIONS | {"account", "qos"})
    names |= {n + more for n in names for more in ("x", "-x")} | set(SHORT_FORMS.values())
    names |= {"nice", "constraint", "exclusive", "mem-bind", "gres", "time-min", "wait-all-nodes", "account", "qos"}
    queue = {"partition": "cpu", "memory_limit": 1, "time_limit": 1, "cores_per_slot": 1, "max_slots_per_user": 1,
             **{key: "lab" for key in sets}}
    data = {"queues": {"q": queue}}
    disagree = [(text, refused) for name in sorted(names) for text in (f"--{name}", f"--{name}=1", f" --{name}=a b ")
                if (refused := clash(name, BRIDGE_OPTIONS | set(sets)) is not None)
                != _directive_refused(data, text)]
    assert disagree == []
    assert _directive_refused(data, "--time=5") and not _directive_refused(data, "--nice=5")  # the test can tell


@pytest.fixture(scope="module")
def declaration_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("schema-declarations")
    return make_workspace(root / "ws", f"sqlite:///{root / 'ws' / 'bridge.sqlite'}")


def test_every_declaration_mutation_is_refused_by_loader_and_schema(declaration_workspace: Workspace) -> None:
    good = load_json((BAD / "good" / "experiment.json").read_bytes().replace(b"@NAME@", b"mutant"))
    sessions = create_session_factory(declaration_workspace.url)
    cases = [*mutations(good, TOP_FIELDS), *mutations(good, BLOCK_FIELDS, ("blocks", "first"))]
    cases += [("no block", _with(good, (), "blocks", {})), ("a bad block name", _with(
        good, ("blocks",), "a\x1bb", good["blocks"]["second"]))]
    try:
        for what, data in cases:
            with sessions() as session, pytest.raises(DeclarationError):
                load_experiment(session, data)
                pytest.fail(f"the loader accepts {what}")
            assert errors("experiment", data), f"the schema accepts {what}"
    finally:
        sessions.kw["bind"].dispose()


def test_optional_block_fields_may_be_left_out(declaration_workspace: Workspace) -> None:
    """The table's `required` is the loader's: a block without its optional fields loads and validates."""
    good = load_json((BAD / "good" / "experiment.json").read_bytes().replace(b"@NAME@", b"sparse"))
    block = good["blocks"]["second"]
    for f in BLOCK_FIELDS:
        if not f.required and f.name in block:
            del block[f.name]
    assert errors("experiment", good) == []
    sessions = create_session_factory(declaration_workspace.url)
    try:
        with sessions() as session:
            load_experiment(session, good)
    finally:
        sessions.kw["bind"].dispose()


def test_schema_command_prints_each_schema(capsys: pytest.CaptureFixture) -> None:
    for name in SCHEMAS:
        assert main(["schema", name]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == json.loads(json.dumps(SCHEMAS[name]()))
    with pytest.raises(SystemExit):
        main(["schema", "nope"])
