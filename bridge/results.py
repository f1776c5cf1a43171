"""BEAT's result dict, built in one place: what an element reports and what a failure records.

The shape is beat.core's executor result: ``status`` (0 for success),
``stdout``, ``stderr``, ``user_error`` (the algorithm's), ``system_error``
(the platform's), ``timed_out`` and ``statistics`` (cpu, memory, data, time).
The element writes one per split; the poller makes one for an element Slurm
failed; outcomes store either as a Result row. Pure: no database, no I/O,
importable on a compute node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.values import INT32_MAX, integer_problem, json_problem

# the keys a Result row keeps besides status (bridge.models.Result)
RESULT_FIELDS = ("stdout", "stderr", "user_error", "system_error", "statistics", "timed_out")
_TEXTS = ("stdout", "stderr", "user_error", "system_error")


def beat_result(*, status: int = 0, stdout: str = "", stderr: str = "", user_error: str | None = None,
                system_error: str | None = None, timed_out: bool = False,
                statistics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One result dict with every key present."""
    return {"status": status, "stdout": stdout, "stderr": stderr, "user_error": user_error,
            "system_error": system_error, "timed_out": timed_out, "statistics": dict(statistics or {})}


def as_result(value: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    """A result dict as given, or one for a plain error message (a system error); {} for None."""
    if isinstance(value, str):
        return beat_result(status=1, system_error=value) if value else {}
    return value or {}


_TEXT_KEYS = ("stdout", "stderr", "user_error", "system_error")


def result_problem(result: Mapping[str, Any]) -> str | None:
    """What makes an element's result dict unfit for a Result row (naming the key), or None.

    The file comes from the element's side of a shared file system: a value of
    the wrong type must fail its split with a message, never reach the database.
    """
    status = result.get("status", 0)
    if isinstance(status, bool) or not isinstance(status, int):
        return f"'status' must be an integer, not {status!r:.40}"
    for key in _TEXT_KEYS:
        if result.get(key) is not None and not isinstance(result[key], str):
            return f"{key!r} must be a string or null, not {type(result[key]).__name__}"
    if result.get("statistics") is not None and not isinstance(result["statistics"], Mapping):
        return f"'statistics' must be an object or null, not {type(result['statistics']).__name__}"
    if not isinstance(result.get("timed_out", False), bool):
        return "'timed_out' must be true or false"
    return None


def failure_result(status: int, message: str, timed_out: bool, element: Mapping[str, Any] | None) -> dict[str, Any]:
    """The result of an element Slurm failed: Slurm's reason as system error, the element's own details kept."""
    result = beat_result(status=status or 1, system_error=message, timed_out=timed_out)
    if element:
        for key in ("stdout", "stderr", "user_error", "statistics"):
            result[key] = element.get(key) or result[key]
        if element.get("system_error"):
            result["system_error"] = f"{message}\n{element['system_error']}"
    return result


def sum_statistics(items: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Sum split statistics key by key (nested mappings recursively; numbers added)."""
    total: dict[str, Any] = {}
    for item in items:
        for key, value in (item or {}).items():
            if isinstance(value, Mapping):
                total[key] = sum_statistics([total.get(key) or {}, value])
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
            else:
                total.setdefault(key, value)
    return total


def joined(texts: Iterable[str | None]) -> str | None:
    """Split outputs concatenated in split order (None if all empty)."""
    parts = [text for text in texts if text]
    return "".join(parts) if parts else None


def result_problem(value: Any) -> str | None:
    """Why an element's result (parsed from its JSON file) cannot be stored as a Result row; None if it can.

    The file is written on the compute node by a process running user code: its
    types are checked here, before a status of 10**30 or a NaN statistic reaches
    the database and fails every cycle.
    """
    if not isinstance(value, Mapping):
        return "expected a JSON object"
    unknown = sorted(set(value) - {"status", *RESULT_FIELDS})
    if unknown:
        return f"unknown key {unknown[0]!r} (valid keys: status, {', '.join(RESULT_FIELDS)})"
    if "status" not in value:
        return "the key 'status' is missing (an integer, 0 for success)"
    problem = integer_problem(value["status"], INT32_MAX, minimum=-INT32_MAX - 1)
    if problem:
        return f"status: {problem}"
    for key in _TEXTS:
        if not isinstance(value.get(key), (str, type(None))):
            return f"{key}: expected a string or null"
    if not isinstance(value.get("timed_out", False), bool):
        return "timed_out: expected true or false"
    statistics = value.get("statistics")
    if statistics is not None and not isinstance(statistics, Mapping):
        return "statistics: expected a JSON object"
    found = json_problem(statistics)
    if found:
        return f"statistics.{found[0]}: {found[1]}"
    return None
