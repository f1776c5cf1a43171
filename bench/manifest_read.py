"""What an element pays to find its own entry in its array's manifest, against reading its own split file.

An element reads the manifest's header (the shared configuration) and seeks to
its own fixed-width line, so its cost should not grow with the array. Measured
at the largest array (MaxArraySize, 1,001 elements on the local cluster): ours
is bridge.sbatch_scripts.manifest.read_element on a manifest the bridge's
submitter writes, the baseline is the same element's read of its own per-split
file, as bridges before the manifest wrote them (the same function's fallback).
Both are median of ROUNDS, in-process, from the page cache (an element reads the
file once). No cluster needed. Usage: python bench/manifest_read.py [elements]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import median_seconds, one_block, ratio_line

from bridge.db import create_session_factory
from bridge.declaration import load_experiment
from bridge.element_config import array_configuration, get_configuration_for_split, job_facts, split_entry
from bridge.helpers import schedule_experiment, split_new_jobs
from bridge.sbatch_scripts.manifest import read_element, split_file, write_manifest
from bridge.sbatch_scripts.spool import array_spool_dir
from bridge.scheduling import upsert_queue

ROUNDS = 200
TAG = "bb-bench-6b0f0000-0000-1-000000"


def spools(root: Path, n: int) -> tuple[Path, Path, int]:
    """An n-element array spooled both ways (manifest; one legacy file per split); its middle index."""
    sessions = create_session_factory(f"sqlite:///{root / 'bridge.sqlite'}")
    cache = root / "cache"
    with sessions() as session:
        upsert_queue(session, name="bench", partition="debug", memory_limit=100, time_limit=5,
                     max_slots_per_user=n, environments=[("Python", "3.11")])
        session.commit()
        schedule_experiment(session, load_experiment(session, one_block("manifest", n)))
        splits = split_new_jobs(session)
        shared = array_configuration(job_facts(session, splits[0].job_id), str(cache))
        manifest = array_spool_dir(root / "manifest", TAG)
        write_manifest(manifest, TAG, cache, 0, shared, {s.split_index: split_entry(s) for s in splits})
        legacy = array_spool_dir(root / "legacy", TAG)
        legacy.mkdir(parents=True)
        middle = splits[n // 2]
        document = {"configuration": get_configuration_for_split(middle, str(cache)),
                    "cache_root": str(cache), "submission_tag": TAG}
        split_file(legacy, middle.split_index).write_text(json.dumps(document, sort_keys=True))
        return manifest, legacy, middle.split_index


def main(n: int) -> None:
    manifest, legacy, index = spools(Path(tempfile.mkdtemp(prefix="beat-bench-")), n)
    assert read_element(manifest, index).configuration == read_element(legacy, index).configuration
    ours = median_seconds(lambda: read_element(manifest, index), ROUNDS)
    theirs = median_seconds(lambda: read_element(legacy, index), ROUNDS)
    size = (manifest / "manifest.jsonl").stat().st_size
    print(f"one element of {n} finds its entry: manifest {size / 1024:.0f} KB vs its own split file "
          f"{split_file(legacy, index).stat().st_size} bytes")
    print(ratio_line("element read", ours * 1000, theirs * 1000, unit="ms"))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1001)
