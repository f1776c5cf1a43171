"""What one array sends along: the manifest its elements read and the sbatch script that starts them.

Both are built per array from plain values (bridge.element_config.JobFacts, the
claimed splits): the configuration the splits share once, each split's own
entry, one manifest file, one script. Errors propagate to the submitter, which
tells the disk's (OSError), the template's and the job's own data apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge import render
from bridge.backend import Backend
from bridge.element_config import JobFacts, array_configuration, split_entry
from bridge.queue_settings import QueueSettings
from bridge.resubmission import with_exclude
from bridge.sbatch_scripts import spool as spool_files
from bridge.sbatch_scripts.manifest import write_manifest
from bridge.submission_rows import ClaimedSplit

ELEMENT_RUNNER = "bridge.sbatch_scripts.element"


@dataclass(frozen=True)
class BatchScript:
    """An array's script and the directive mapping its `#SBATCH` lines were rendered from.

    sbatch reads the lines; the pyslurm client builds its job description from
    `directives` (pyslurm ignores `#SBATCH` lines, bridge.pyslurm_client).
    """

    text: str
    directives: Mapping[str, str | None]


def write_spool(backend: Backend, tag: str, job: JobFacts, splits: Sequence[ClaimedSplit], offset: int,
                linger: float = 0.0) -> Path:
    """The array's one manifest, `<spool>/<tag>/manifest.jsonl`: what each of its elements runs.

    The configuration the splits share is built once; each split adds its
    range, index and id under its array index (split index - offset).
    `linger` > 0: the elements wait that long for their release (bridge.handover).
    """
    config = backend.config
    spool = spool_files.array_spool_dir(config.spool_dir, tag)
    root = str(Path(config.cache_root).resolve())
    shared = array_configuration(job, root)
    entries = {split.split_index - offset: split_entry(split) for split in splits}
    write_manifest(spool, tag, root, offset, shared, entries, linger=linger)
    return spool


def array_account(backend: Backend, job: JobFacts, queue: QueueSettings) -> str | None:
    """The account the job's arrays are charged to: the author's, the queue's or the default ([accounts])."""
    return backend.config.accounts.account_for(job.author, queue.account)


def render_script(backend: Backend, queue: QueueSettings, job: JobFacts, splits: Sequence[ClaimedSplit], tag: str,
                  spool: Path, offset: int, exclude_nodes: str | None) -> BatchScript:
    """The array's sbatch script, from the queue settings of the job's mapping version alone.

    Never from queues.toml as loaded at start-up: the synced row (or the
    version the job's first array used) is the only source, so what ran is
    what its version says.
    """
    indices = tuple(s.split_index - offset for s in splits)
    spec = render.ArraySpec(
        job_name=tag, submission_tag=tag, partition=queue.partition,
        cpus_per_task=queue.cores_per_slot, mem_mb=queue.memory_limit, time_minutes=queue.time_limit,
        array_indices=indices, throttle=queue.max_slots_per_user,
        output=f"{render.slurm_filename(str(spool))}/slurm-%A_%a.out",
        error=f"{render.slurm_filename(str(spool))}/slurm-%A_%a.err",
        python=backend.python, element_runner=ELEMENT_RUNNER, spool_dir=str(spool),
        comment=f"beat experiment={job.experiment_name} block={job.block_name} job={job.job_id}",
        account=array_account(backend, job, queue), qos=queue.qos,
        extra_directives=with_exclude(queue.extra_directives, exclude_nodes),
    )
    templates_dir = backend.config.templates_dir
    text = render.render_array_script(spec, template=queue.template_ref(),
                                      search_path=[templates_dir] if templates_dir else [])
    return BatchScript(text, render.sbatch_directives(spec))
