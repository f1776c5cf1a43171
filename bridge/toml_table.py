"""One table of an admin's TOML file, read with typed getters whose errors name file and key.

Every error names the file, the dotted key, the bad value and what would have
been accepted; ``done()`` rejects the keys no getter asked for (a typo must not
silently fall back to a default). Relative paths are relative to the file that
holds them, never to the current directory.

A table's keys are declared once, as a tuple of `Field`s (name, kind, default,
bounds, pattern, description): `read_fields` reads a table by them, and
bridge.schema turns the same tuples into the JSON Schema editors validate with.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import ConfigError
from bridge.values import INT32_MAX, JsonError, decode_utf8, has_control, printable

MISSING = object()


class Table:
    """One TOML table being read: typed getters that know the file and dotted key for errors."""

    def __init__(self, file: Path, prefix: str, data: Mapping[str, Any]) -> None:
        self.file, self.prefix, self.data, self.seen = file, prefix, data, set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, value: Any, expected: str) -> ConfigError:
        return ConfigError(f"{self.file}: {printable(self.key(name))} = {value!r} is invalid: expected {expected}")

    def raw(self, name: str, default: Any) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is MISSING:
                raise ConfigError(f"{self.file}: required key {self.key(name)} is missing")
            return default
        return self.data[name]

    def _get(self, name: str, default: Any, ok: Callable[[Any], bool], expected: str) -> Any:
        value = self.raw(name, default)
        if default is not MISSING and value is default:
            return value
        if not ok(value):
            raise self.fail(name, value, expected)
        return value

    def text(self, name: str, default: Any = MISSING, pattern: re.Pattern | None = None,
             max_length: int | None = None, expected: str = "") -> Any:
        value = self._get(name, default, _is_text, "a non-empty string without control characters")
        if value is not default and pattern is not None and not pattern.match(value):
            raise self.fail(name, value, expected or f"a name matching {pattern.pattern}")
        if value is not default and max_length is not None and len(value) > max_length:
            raise self.fail(name, value, f"a string of at most {max_length} characters")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = MISSING) -> str:
        expected = "one of " + ", ".join(repr(c) for c in choices)
        return self._get(name, default, lambda v: v in choices, expected)

    def integer(self, name: str, default: Any = MISSING, minimum: int = 1, maximum: int = INT32_MAX) -> Any:
        """An integer in [minimum, maximum]; the default maximum is what a database Integer column holds."""
        ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and minimum <= v <= maximum  # noqa: E731
        return self._get(name, default, ok, f"an integer from {minimum} to {maximum}")

    def number(self, name: str, default: Any = MISSING, minimum: float = 0.0, maximum: float = 86400.0) -> float:
        """A finite number in [minimum, maximum] (seconds, mostly: at most a day by default)."""
        ok = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and minimum <= v <= maximum  # noqa: E731
        return float(self._get(name, default, ok, f"a number from {minimum} to {maximum}"))

    def flag(self, name: str, default: Any = MISSING) -> bool:
        return self._get(name, default, lambda v: isinstance(v, bool), "true or false")

    def token(self, name: str, pattern: re.Pattern, expected: str, default: Any = MISSING) -> Any:
        """A string that fully matches pattern (an id that goes into names); anything else fails with `expected`."""
        return self._get(name, default, lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None, expected)

    def path(self, name: str, default: Any = MISSING, pattern: re.Pattern | None = None, expected: str = "") -> Any:
        value = self.text(name, default, pattern, expected=expected)
        if value is default and default is not MISSING:
            return value
        return _resolve(self.file.parent, value)

    def items(self, name: str) -> list[Any]:
        value = self.raw(name, [])
        if not isinstance(value, list):
            raise self.fail(name, value, "a list")
        return value

    def table(self, name: str, required: bool = False) -> Table | None:
        value = self.raw(name, MISSING if required else None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(name, value, "a table")
        return Table(self.file, self.key(name), value)

    def done(self) -> None:
        """Reject every key that no getter asked for."""
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            valid = ", ".join(sorted(self.seen)) or "none"
            where = f"[{self.prefix}]" if self.prefix else "the top level"
            raise ConfigError(
                f"{self.file}: unknown key {self.key(unknown[0])!s} in {where} (valid keys: {valid})"
            )


@dataclass(frozen=True)
class Field:
    """One key of a TOML table: what the loader accepts, and what bridge.schema writes into the JSON Schema.

    kind: text, token, path, choice, integer, number, flag (read by the getter of that name), table (its
    `fields`; read_fields gives a dict, or None when absent), list (the raw list; `item` describes
    one element for the schema and the loader's own element check), map (keys matching
    `key_pattern`, each value read as `item`); name-version and directive are list items only, which
    bridge.queues_config checks itself and bridge.schema writes. A `default` of MISSING makes the key required;
    `required_when` = (sibling key, value) makes it required when that sibling has that value.
    `expected` words a pattern's failure ("a name matching <pattern>" when empty).
    """

    name: str
    kind: str
    default: Any = MISSING
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None
    max_length: int | None = None
    fields: tuple[Field, ...] = ()
    item: Field | None = None
    key_pattern: re.Pattern | None = None
    expected: str = ""
    required_when: tuple[str, Any] | None = None

    @property
    def required(self) -> bool:
        return self.default is MISSING and self.required_when is None

    def read(self, t: Table) -> Any:
        """This key's value from table t, checked; a ConfigError names the file and key."""
        default = None if self.required_when is not None else self.default
        if self.kind == "text":
            return t.text(self.name, default, self.pattern, self.max_length, self.expected)
        if self.kind == "path":
            return t.path(self.name, default, self.pattern, self.expected)
        if self.kind == "token":
            assert self.pattern is not None
            return t.token(self.name, self.pattern, self.expected, default)
        if self.kind == "flag":
            return t.flag(self.name, default)
        if self.kind == "choice":
            return t.choice(self.name, self.choices, default)
        if self.kind == "integer":
            return t.integer(self.name, default, *_bounds(self, 1, INT32_MAX))
        if self.kind == "number":
            return t.number(self.name, default, *_bounds(self, 0.0, 86400.0))
        if self.kind == "list":
            return t.items(self.name)
        sub = t.table(self.name, required=self.required)
        if sub is None:
            return None
        return read_fields(sub, self.fields) if self.kind == "table" else _read_map(sub, self)


def _bounds(f: Field, minimum: float, maximum: float) -> tuple[Any, Any]:
    return (minimum if f.minimum is None else f.minimum), (maximum if f.maximum is None else f.maximum)


def read_fields(t: Table, fields: tuple[Field, ...]) -> dict[str, Any]:
    """Every field of table t, in order (so the first problem found is the first in the table); unknown keys refused.

    A field whose `required_when` holds (its sibling has that value) must be there.
    """
    values = {f.name: f.read(t) for f in fields}
    for f in fields:
        if f.required_when and values.get(f.required_when[0]) == f.required_when[1] and values[f.name] is None:
            raise ConfigError(f"{t.file}: required key {t.key(f.name)} is missing")
    t.done()
    return values


def _read_map(t: Table, f: Field) -> dict[str, Any]:
    """A table of free keys (environment variables): each key must match f.key_pattern, each value f.item."""
    assert f.item is not None and f.key_pattern is not None
    values = {}
    for name in t.data:
        if not f.key_pattern.fullmatch(name):
            raise t.fail(name, name, f.expected or f"a name matching {f.key_pattern.pattern}")
        values[name] = Field(name, f.item.kind, pattern=f.item.pattern, max_length=f.item.max_length,
                             expected=f.item.expected).read(t)
    t.done()
    return values


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and not has_control(value)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; ConfigError naming the file when it is missing, unreadable, not UTF-8 or not TOML."""
    try:
        return parse_toml(path.read_bytes())
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: configuration file not found") from e
    except IsADirectoryError as e:
        raise ConfigError(f"{path}: is a directory, expected a configuration file") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read configuration file: {e.strerror or e}") from e
    except (JsonError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: {e}") from e


def parse_toml(data: bytes) -> dict[str, Any]:
    """TOML from bytes; JsonError (not UTF-8, nested too deeply) or TOMLDecodeError (as 'not valid TOML: ...')."""
    text = decode_utf8(data)
    try:
        return tomllib.loads(text)
    except RecursionError as e:
        raise JsonError("not accepted: nested too deeply to read") from e
    except tomllib.TOMLDecodeError as e:
        raise tomllib.TOMLDecodeError(f"not valid TOML: {e}") from e
