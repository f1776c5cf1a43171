"""is_cache_complete on real files, and cutting ranges on common index boundaries."""

from __future__ import annotations

import pytest
from cachefiles import write_complete, write_entry

from bridge import cache
from bridge.hashing import cache_path
from bridge.helpers import is_cache_complete

HASH = "ab" * 32
PATH = cache_path(HASH)


def test_complete(cache_root):
    write_complete(cache_root, HASH, [(0, 4), (5, 9)])
    assert is_cache_complete(PATH, 2, str(cache_root)) is True


@pytest.mark.parametrize("missing", [".data", ".index", ".data.checksum", ".index.checksum"])
def test_each_missing_file_kind(cache_root, missing):
    write_complete(cache_root, HASH, [(0, 4), (5, 9)])
    (cache_root / f"{PATH}.5.9{missing}").unlink()
    assert is_cache_complete(PATH, 2, str(cache_root)) is False


def test_wrong_count(cache_root):
    write_complete(cache_root, HASH, [(0, 4), (5, 9)])
    assert is_cache_complete(PATH, 3, str(cache_root)) is False
    assert is_cache_complete(PATH, 1, str(cache_root)) is False


def test_gap(cache_root):
    write_complete(cache_root, HASH, [(0, 4), (6, 9)])
    assert is_cache_complete(PATH, 2, str(cache_root)) is False


def test_not_from_zero(cache_root):
    write_complete(cache_root, HASH, [(1, 4), (5, 9)])
    assert is_cache_complete(PATH, 2, str(cache_root)) is False


@pytest.mark.parametrize("kind", ["data", "index"])
def test_bad_checksum(cache_root, kind):
    write_entry(cache_root, HASH, 0, 4)
    write_entry(cache_root, HASH, 5, 9, corrupt=kind)
    assert is_cache_complete(PATH, 2, str(cache_root)) is False


def test_any_error_is_false(tmp_path, monkeypatch):
    monkeypatch.delenv(cache.ENV_VAR, raising=False)
    assert is_cache_complete(PATH, 1, str(tmp_path / "nowhere")) is False
    assert is_cache_complete(PATH, 1) is False  # no root at all


def test_root_read_at_call_time(cache_root, monkeypatch):
    write_complete(cache_root, HASH, [(0, 9)])
    monkeypatch.setenv(cache.ENV_VAR, str(cache_root))
    assert is_cache_complete(PATH, 1) is True
    monkeypatch.setattr(cache, "CACHE_ROOT", str(cache_root / "elsewhere"))
    assert is_cache_complete(PATH, 1) is False


def test_other_hashes_with_the_same_prefix_are_not_counted(cache_root):
    write_complete(cache_root, HASH, [(0, 9)])
    write_complete(cache_root, f"{PATH}0", [(0, 9)])
    assert is_cache_complete(PATH, 1, str(cache_root)) is True


def test_read_index(cache_root):
    write_entry(cache_root, HASH, 0, 9, [(0, 4), (5, 9)])
    assert cache.read_index(PATH, cache_root) == [(0, 4), (5, 9)]
    with pytest.raises(cache.CacheError):
        cache.read_index(cache_path("cd" * 32), cache_root)


def test_split_ranges_on_common_boundaries():
    units = [(i, i) for i in range(10)]
    assert cache.split_ranges([units], 3) == [(0, 3), (4, 6), (7, 9)]
    assert cache.split_ranges([units], 20) == [(i, i) for i in range(10)]
    coarse = [(0, 3), (4, 7), (8, 9)]
    assert cache.split_ranges([units, coarse], 2) == [(0, 7), (8, 9)]
    assert cache.split_ranges([], 2) == []
