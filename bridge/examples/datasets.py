"""Deterministic generated datasets: a dataset input {"dataset": name, "size": N} is units 0..N-1.

Nothing is read from disk: unit ``i`` of a dataset is a pure function of ``i``,
so every element computes exactly the units of its range, on any node, and two
runs give the same bytes (hence the same cache checksums).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")

DATASETS: dict[str, Callable[[int], Any]] = {
    "numbers": lambda i: i,
    "squares": lambda i: i * i,
    "ones": lambda i: 1,
    "halves": lambda i: i / 2,
    "words": lambda i: f"{WORDS[i % len(WORDS)]}-{i}",
}


class UnknownDataset(LookupError):
    """No generated dataset has that name."""


class OutOfRange(IndexError):
    """The requested units are outside the dataset's size."""


def dataset_names() -> list[str]:
    """The valid dataset names, sorted."""
    return sorted(DATASETS)


def generate(name: str, size: int, start: int | None = None, end: int | None = None) -> list[Any]:
    """Units start..end (inclusive) of dataset `name` of `size` units; the whole dataset when no range."""
    unit = DATASETS.get(name)
    if unit is None:
        raise UnknownDataset(f"unknown dataset {name!r}; valid datasets: {', '.join(dataset_names())}")
    if start is None or end is None:
        start, end = 0, size - 1
    if not 0 <= start <= end < size:
        raise OutOfRange(f"range [{start}, {end}] is outside dataset {name!r} of size {size}")
    return [unit(i) for i in range(start, end + 1)]
