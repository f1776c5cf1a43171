"""What a value from outside (a declaration, a config file, a command line, a result file) may be.

Pure checks shared by every reader, each answering with the problem in words
(None when the value is fine), so that the caller can name its file and key:
names (no control or invisible characters, at most the column's length),
integers the database can store, and JSON values (finite numbers, bounded
nesting, no TOML dates). `load_json` refuses what `json.loads` silently
accepts: a duplicate key (the first value would be lost) and nesting deep
enough to exhaust the interpreter's stack.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

INT32_MAX = 2**31 - 1  # an Integer column on PostgreSQL; ids are the same type
JSON_DEPTH = 32  # default nesting limit of parameters and statistics
_INVISIBLE = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # control, format (bidi), surrogate, unassigned, line breaks


class JsonError(ValueError):
    """A JSON text is not valid, or not what the bridge accepts."""


def has_control(text: str) -> bool:
    """Whether text holds a control, bidi/format, surrogate or line-separator character."""
    return any(unicodedata.category(c) in _INVISIBLE for c in text)


def name_problem(value: Any, max_length: int) -> str | None:
    """Why value is not a valid name (a non-empty string, printable, at most max_length characters)."""
    expected = f"expected a name: a non-empty string of at most {max_length} characters without control characters"
    if not isinstance(value, str) or not value.strip():
        return f"{_short(value)} is not valid: {expected}"
    if has_control(value):
        return f"{_short(value)} contains control characters: {expected}"
    if len(value) > max_length:
        return f"a name of {len(value)} characters is too long: {expected}"
    return None


def integer_problem(value: Any, maximum: int, minimum: int = 1) -> str | None:
    """Why value is not an integer in [minimum, maximum] (a bool is not an integer)."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return None
    return f"{_short(value)} is not valid: expected an integer from {minimum} to {maximum}"


def json_problem(value: Any, depth: int = JSON_DEPTH, where: str = "", limit: int | None = None
                 ) -> tuple[str, str] | None:
    """(key path, problem) of the first part of value that is not a plain, finite, JSON value nested <= depth."""
    limit = depth if limit is None else limit
    if depth < 0:
        return where, f"nested deeper than {limit} levels"
    if isinstance(value, (datetime, date, time)):
        return where, "a TOML date or time is not a JSON value: expected a string, number, boolean, list or mapping"
    if isinstance(value, float) and not math.isfinite(value):
        return where, f"{value!r} is not valid: expected a finite number"
    if value is None or isinstance(value, (str, int, float)):
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return where, f"key {_short(key)} is not a string"
            found = json_problem(item, depth - 1, f"{where}.{key}" if where else key, limit)
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = json_problem(item, depth - 1, f"{where}[{i}]", limit)
            if found:
                return found
        return None
    return where, f"a {type(value).__name__} is not a JSON value"


def load_json(data: bytes | str) -> Any:
    """Parse JSON text; JsonError for invalid text, non-UTF-8 bytes, a duplicate key or deep nesting."""
    if isinstance(data, bytes):
        data = decode_utf8(data)
    try:
        return json.loads(data, object_pairs_hook=_unique_keys)
    except RecursionError as e:
        raise JsonError("not accepted: nested too deeply to read") from e
    except JsonError:
        raise
    except ValueError as e:
        raise JsonError(f"not valid JSON: {e}") from e


def decode_utf8(data: bytes) -> str:
    """bytes as UTF-8 text; JsonError naming the first bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonError(f"not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start}") from e


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise JsonError(f"duplicate key {key!r} (each key may appear once in an object)")
        seen[key] = value
    return seen


def _short(value: Any) -> str:
    """repr of value, cut to 60 characters (a hostile value may be huge)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def printable(text: str) -> str:
    """text with every control or invisible character escaped (\\n, \\x1b, \\u202e): safe for a terminal."""
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _INVISIBLE else c
                   for c in text)
