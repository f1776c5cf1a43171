"""The array manifest (bridge.sbatch_scripts.manifest): one file per array, each element reads its own line."""

from __future__ import annotations

import json

import pytest

from bridge.sbatch_scripts.manifest import ManifestError, manifest_file, read_element, split_file, write_manifest

TAG = "bb-test-6b0f0000-0000-1-000000"
SHARED = {"algorithm": "pkg.mod:f", "outputs": {"out": {"path": "ab/cd/ef/0123"}}, "nb_splits": 9, "job_id": 4}


def _entry(index: int, offset: int = 0, **extra) -> dict:
    return {"range": [index, index], "split_index": index + offset, "split_id": 100 + index, **extra}


def test_each_index_reads_the_shared_configuration_and_its_own_entry(tmp_path):
    entries = {i: _entry(i, 1000) for i in (3, 4, 8)}
    write_manifest(tmp_path, TAG, tmp_path / "cache", 1000, SHARED, entries)
    for index in (3, 4, 8):
        read = read_element(tmp_path, index)
        assert read.configuration == {**SHARED, **entries[index]}
        assert (read.cache_root, read.submission_tag, read.file) == (
            str((tmp_path / "cache").resolve()), TAG, manifest_file(tmp_path))


@pytest.mark.parametrize("index", [0, 2, 5, 7, 9, 100])
def test_an_index_outside_the_array_or_in_a_gap_has_no_entry(tmp_path, index):
    write_manifest(tmp_path, TAG, tmp_path, 0, SHARED, {i: _entry(i) for i in (3, 4, 8)})
    with pytest.raises(ManifestError, match=f"no entry for array index {index}$"):
        read_element(tmp_path, index)


def test_an_element_reads_only_the_header_and_its_own_line(tmp_path):
    """Lines have one width: damaging every other element's line changes nothing for this one."""
    write_manifest(tmp_path, TAG, tmp_path, 0, SHARED, {i: _entry(i) for i in range(5)})
    header, *lines = manifest_file(tmp_path).read_bytes().split(b"\n")[:-1]
    assert len({len(line) for line in lines}) == 1 and len(lines) == 5
    damaged = [line if i == 2 else b"#" * len(line) for i, line in enumerate(lines)]
    manifest_file(tmp_path).write_bytes(b"\n".join([header, *damaged]) + b"\n")
    assert read_element(tmp_path, 2).configuration["split_id"] == 102
    with pytest.raises(ManifestError, match="entry of array index 3 is not JSON"):
        read_element(tmp_path, 3)


def test_an_entry_under_the_wrong_index_is_refused(tmp_path):
    write_manifest(tmp_path, TAG, tmp_path, 10, SHARED, {0: _entry(0, 10), 1: _entry(0, 10)})
    assert read_element(tmp_path, 0).configuration["split_index"] == 10
    with pytest.raises(ManifestError, match=r"entry of array index 1 is split 10, not 1 \+ offset 10"):
        read_element(tmp_path, 1)


def test_widths_are_bytes_so_non_ascii_entries_still_line_up(tmp_path):
    entries = {0: _entry(0, note="é" * 5), 1: _entry(1), 2: _entry(2, note="日本")}
    write_manifest(tmp_path, TAG, tmp_path, 0, SHARED, entries)
    assert [read_element(tmp_path, i).configuration["split_id"] for i in range(3)] == [100, 101, 102]
    assert read_element(tmp_path, 2).configuration["note"] == "日本"


def test_the_header_must_be_a_manifest(tmp_path):
    manifest_file(tmp_path).write_text(json.dumps({"format": 1, "configuration": {}, "first": 0}) + "\n")
    with pytest.raises(ManifestError, match="expected a format 1 manifest header"):
        read_element(tmp_path, 0)
    manifest_file(tmp_path).write_text("")
    with pytest.raises(ManifestError, match="header is not JSON"):
        read_element(tmp_path, 0)


def test_without_a_manifest_the_legacy_split_file_is_read(tmp_path):
    document = {"configuration": {**SHARED, **_entry(6)}, "cache_root": "/c", "submission_tag": TAG}
    split_file(tmp_path, 6).write_text(json.dumps(document))
    read = read_element(tmp_path, 6)
    assert read.configuration == document["configuration"]
    assert (read.cache_root, read.file) == ("/c", split_file(tmp_path, 6))
    with pytest.raises(ManifestError, match="no manifest .* \\(nor split file split-7.json\\)"):
        read_element(tmp_path, 7)
