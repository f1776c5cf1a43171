"""Splitting a huge dataset costs what its splits cost, not one list entry per data unit."""

from __future__ import annotations

import tracemalloc

import pytest
from dbsupport import block, declare, splits_of

from bridge import helpers


@pytest.mark.xfail(strict=True, reason="split_new_jobs builds a list per data unit")
def test_a_huge_dataset_is_split_arithmetically(session):
    """2,000,000 data units in 4 ranges: the old list of one tuple per unit took ~150 MB here."""
    exp = declare(session, {"name": "big", "author": "a", "blocks": {
        "b": block(slots=4, queue="big", inputs={"in": {"dataset": "d", "size": 2_000_000}})}})
    tracemalloc.start()
    try:
        helpers.split_new_jobs(session)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    ranges = [(s.start_index, s.end_index) for s in splits_of(session, exp, "b")]
    assert ranges == [(0, 499_999), (500_000, 999_999), (1_000_000, 1_499_999), (1_500_000, 1_999_999)]
    assert peak < 20_000_000
