"""Hostile values in `#SBATCH` lines, checked by the real sbatch and by what Slurm recorded (issue 9, hole 16).

User-chosen experiment and block names reach the job's comment; the admin's
spool_dir reaches --output/--error. Quoting was only checked against our own
unquote: here `sbatch --test-only` parses every script, a held array of each
is read back from slurmctld (comment and job name exactly as meant), and a real
experiment runs with a spool path full of characters Slurm treats specially.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from bridge_env import QUEUES, block, make_env
from poller_env import finished, run_loop

from bridge.backend import make_backend
from bridge.config import load_config
from bridge.declaration import load_experiment
from bridge.devcluster.sandbox import write_config
from bridge.errors import ConfigError
from bridge.helpers import schedule_experiment
from bridge.models import Experiment
from bridge.render import ArraySpec, UnsafeValueError, render_array_script
from bridge.slurm import parse_sbatch_parsable

HOSTILE = {
    "quotes": "it's a \"quoted\" name",
    "spaces": "many   spaces here",
    "equals-commas": "key=value,a=b,,c",
    "unicode": "ünïcödé ✓ 名前 🙂",
    "percent": "100% %j %A_%a %%",
    "shell": "$(touch /tmp/pwned) `id` ${HOME} ; rm -rf / &",
    "hash": "#SBATCH --wrap=id # not a comment",
    "backslash": "back\\slash\\",
    "long": "x" * 1000,
}


def spec(tmp_path: Path, name: str, hold: bool = False) -> ArraySpec:
    return ArraySpec(
        job_name="bb-hostile", submission_tag="bb-hostile", partition="cpu", cpus_per_task=1, mem_mb=50,
        time_minutes=1, array_indices=(0,), output=str(tmp_path / "slurm-%A_%a.out"),
        error=str(tmp_path / "slurm-%A_%a.err"), python=sys.executable, element_runner="bridge.sbatch_scripts.element",
        spool_dir=str(tmp_path), comment=f"beat experiment={name} block={name} job=1",
        extra_directives=("--hold",) if hold else ())


def squeue_field(slurm, job_id: int, field: str) -> str:
    return slurm.run(["squeue", "-h", "-j", str(job_id), "-O", f"{field}:4000"], timeout=30).check().stdout.rstrip()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_sbatch_test_only_accepts_every_hostile_comment(slurm, tmp_path, kind):
    script = render_array_script(spec(tmp_path, HOSTILE[kind]))
    checked = slurm.run(["sbatch", "--test-only"], stdin=script, timeout=30)
    assert checked.returncode == 0 and "to start at" in checked.stderr, checked.stderr


def test_slurm_records_each_hostile_comment_exactly_as_meant(slurm, tmp_path):
    ids = {}
    try:
        for kind, name in HOSTILE.items():
            ids[kind] = parse_sbatch_parsable(slurm.run(["sbatch", "--parsable"], stdin=render_array_script(
                spec(tmp_path, name, hold=True)), timeout=30).check().stdout)
        for kind, job_id in ids.items():
            meant = f"bb-hostile beat experiment={HOSTILE[kind]} block={HOSTILE[kind]} job=1"
            recorded = squeue_field(slurm, job_id, "Comment")
            if len(meant.encode()) <= 1000:
                assert recorded == meant
            else:  # over Slurm's 1024 bytes: cut at a character, marked, and still accepted
                assert recorded.endswith(" …") and meant.startswith(recorded[:-2]) and len(recorded.encode()) <= 1000
            assert squeue_field(slurm, job_id, "Name") == "bb-hostile"
    finally:
        if ids:
            slurm.run(["scancel", *map(str, ids.values())], timeout=30)
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("bad", ["line\nbreak", "nul\x00", "escape\x1b[31m"])
def test_control_characters_never_reach_a_script(tmp_path, bad):
    with pytest.raises(UnsafeValueError, match="control character"):
        render_array_script(spec(tmp_path, bad))


def test_an_experiment_runs_with_a_spool_path_full_of_slurm_pattern_characters(tmp_path, slurm_cluster, slurm):
    spool = str(tmp_path / "spool ü 'q' \"d\" =,; %j 100%% %")
    env = make_env(tmp_path, slurm_cluster, slurm)
    config = dataclasses.replace(env.config, spool_dir=Path(spool))
    env = dataclasses.replace(env, config=config, backend=make_backend(config, slurm))
    with env.sessions() as session:
        declaration = {"name": "pct", "author": "ivy", "blocks": {"a": block("square", slots=2)}}
        experiment = load_experiment(session, declaration)
        schedule_experiment(session, experiment)
        experiment_id = experiment.id
    run_loop(env, finished(experiment_id), timeout=90)
    with env.sessions() as session:
        assert session.get(Experiment, experiment_id).status.value == "D"
    logs = sorted(p.name for p in Path(spool).glob("*/slurm-*.err"))
    assert len(logs) == 2, list(Path(spool).rglob("*"))


def test_a_spool_dir_with_a_backslash_is_refused_naming_the_key(tmp_path):
    config = write_config(tmp_path, tmp_path / "slurm.conf", QUEUES)
    config.write_text(config.read_text().replace('spool_dir = "spool"', 'spool_dir = "sp\\\\ool"'))
    with pytest.raises(ConfigError, match="spool_dir.*backslash"):
        load_config(config)
