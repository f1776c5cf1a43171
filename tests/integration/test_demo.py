"""The main job end to end: `beat-bridge demo`'s two experiments through the real cluster and the real loop."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from beat_parts import beat_test_prefix
from poller_env import results_of, sacct_elements, tags_by_block
from required_parts import need
from sqlalchemy import select

from bridge.app import open_app
from bridge.backend import PyslurmUnsupported
from bridge.cache import is_cache_complete
from bridge.examples import beat_demo
from bridge.examples.demo_experiments import expected_totals
from bridge.hashing import cache_path
from bridge.models import CachedFile, Experiment
from poller.demo import make_run_dir, run_demo, total_of


def test_demo_ends_done_with_the_expected_totals_verified_caches_and_one_run_of_the_shared_block(
        tmp_path, slurm_cluster, slurm, slurm_client):
    """Through both Slurm clients (`beat-bridge demo --runner local|pyslurm`)."""
    beat_test_prefix()  # the demo's BEAT-native experiment needs the `beat` extra: its absence fails in CI
    lines: list[str] = []
    runner = "pyslurm" if slurm_client == "pyslurm" else "local"
    try:
        run = run_demo(make_run_dir(tmp_path, slurm_cluster.spec.slurm_conf, interval=0.5, runner=runner),
                       say=lines.append, timeout=240)
    except PyslurmUnsupported as e:
        need("pyslurm", str(e))
    printed = "\n".join(lines)
    app = open_app(run.root / "bridge.toml")
    assert type(app.client).__name__ == {"local": "SlurmClient", "pyslurm": "PyslurmClient"}[runner]
    with app.sessions() as session:
        experiments = {e.name: e for e in session.scalars(select(Experiment))}
        assert {name: e.status.value for name, e in experiments.items()} == {
            "diamond": "D", "tenfold": "D", beat_demo.NAME: "D"}, printed
        assert {name: total_of(app, e) for name, e in experiments.items()} == {
            **expected_totals(), beat_demo.NAME: beat_demo.expected_total()}
        assert f"(total = {beat_demo.expected_total()}, expected {beat_demo.expected_total()})" in printed

        for experiment in experiments.values():
            for block in experiment.blocks:
                assert block.status.value == "C", (experiment.name, block.name)
        # every output verified on disk: as many index/data pairs as the block had splits, checksums right
        ran = {}  # output hash -> number of splits that computed it
        for experiment in experiments.values():
            for block in experiment.blocks:
                results = results_of(session, block)
                if results:
                    assert all(r.status == 0 for r in results), [(r.user_error, r.system_error) for r in results]
                    assert sorted(r.split_index or 0 for r in results) == list(range(len(results)))
                    for output in block.outputs:
                        assert output.hash not in ran, f"{output.hash[:12]} computed twice"
                        ran[output.hash] = len(results)
        for cached in session.scalars(select(CachedFile)):
            assert cached.status.value == "C", cached
            assert is_cache_complete(cache_path(cached.hash), ran[cached.hash], str(app.config.cache_root)), cached

        # the shared `source` block: one array, in one experiment; the other's job was its mirror
        sources = [b for e in experiments.values() for b in e.blocks if b.name == "source"]
        assert len(sources) == 2 and sources[0].outputs[0].hash == sources[1].outputs[0].hash
        arrays = {b.experiment.name: run.arrays.get(b.id, []) for b in sources}
        assert sorted(len(ids) for ids in arrays.values()) == [0, 1], arrays
        mirror = next(b for b in sources if not run.arrays.get(b.id))
        assert results_of(session, mirror) == []  # it never ran: it followed the original
    # every block that ran went out as exactly one array: as the loop reported it, and as Slurm saw it
    assert all(len(ids) == 1 for ids in run.arrays.values()), run.arrays
    tags = tags_by_block(app.config.spool_dir)
    assert sorted(tags.values()) == sorted(run.arrays), (tags, run.arrays)
    records = sacct_elements(slurm, datetime.now() - timedelta(hours=1), names=tags)
    assert {(r.name, r.array_job_id) for r in records} == {(t, run.arrays[b][0]) for t, b in tags.items()}
    assert len(run.arrays) == len(ran) == 11  # 5 + 4 blocks, the shared one once; 3 BEAT-native blocks
    assert "(mirror: ran once, in the other experiment)" in printed
    assert Path(run.root / "bridge.sqlite").exists()
    # the run's HTML audit: its path printed last, every element it submitted in it, each settled by sacct
    assert run.report is not None and lines[-1] == f"\naudit report: {run.report}", lines[-3:]
    page = run.report.read_text()
    data = json.loads(page.split('<script type="application/json" id="audit-data">', 1)[1].split("</script>")[0])
    total = data["rows"][-1]
    assert (total["key"], total["elements"], total["missing"]) == ("total", str(run.elements), "0"), total
    assert 'id="chart-timeline"' in page and "reconcil" in page.lower()
