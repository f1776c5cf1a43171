"""Splitting a huge dataset costs what its splits cost, not one list entry per data unit."""

from __future__ import annotations

import tracemalloc

import pytest
from dbsupport import block, declare, splits_of

from bridge import helpers
from bridge.cache import split_ranges


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


@pytest.mark.parametrize("sizes", [(10,), (7, 9), (1,), (5, 5, 6)])
@pytest.mark.parametrize("slots", [1, 2, 3, 4, 11])
def test_dataset_sizes_cut_as_one_unit_per_block_index(sizes, slots):
    """The arithmetic cut equals the cut on an index of one data block per unit (beat.core's layout)."""
    per_unit = [[(i, i) for i in range(size)] for size in sizes]
    assert split_ranges([], slots, dataset_sizes=sizes) == split_ranges(per_unit, slots)


def test_dataset_sizes_with_an_index_cut_on_the_index():
    index = [(0, 3), (4, 9), (10, 19), (20, 29)]
    per_unit = [[(i, i) for i in range(25)], index]
    assert split_ranges([index], 3, dataset_sizes=(25,)) == split_ranges(per_unit, 3) == [(0, 9), (10, 19), (20, 24)]
