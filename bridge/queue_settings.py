"""What a queue's scripts render (partition, limits, account, QOS, extras, template) and its version: pure.

One frozen value read from either side: queues.toml (a QueueConfig) when
syncing, the Queue row when submitting (the row is the only source at render
time), a stored QueueVersion when a job's later array must render as its first.
`mapping_version` fingerprints all of it, so a changed account or extra
directive is a new version just as a changed partition is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bridge.models import Queue
from bridge.queues_config import QueueConfig
from bridge.template_paths import package_templates_dir

_BASE = ("partition", "memory_limit", "time_limit", "cores_per_slot", "max_slots_per_user")


@dataclass(frozen=True)
class QueueSettings:
    """Every queue value an array's script is rendered from."""

    partition: str
    memory_limit: int  # MB
    time_limit: int  # minutes
    cores_per_slot: int
    max_slots_per_user: int
    account: str | None = None
    qos: str | None = None
    extra_directives: tuple[str, ...] = ()
    template: str | None = None  # a name in the templates directories (absolute only outside them)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QueueSettings:
        data: dict[str, Any] = json.loads(text)
        data["extra_directives"] = tuple(data.get("extra_directives") or ())
        return cls(**data)

    def template_ref(self) -> str | Path | None:
        """What bridge.render.render_array_script takes: a name, or a Path when stored absolute."""
        if self.template and Path(self.template).is_absolute():
            return Path(self.template)
        return self.template


def mapping_version(queue: QueueSettings | Queue) -> str:
    """A short fingerprint of everything a queue renders: audits and submissions name the mapping by it.

    Partition and limits hash as they did before account, QOS, extras and
    template were in it: a queue without those keeps the version it had.
    """
    settings = queue if isinstance(queue, QueueSettings) else from_row(queue)
    text = "|".join(str(getattr(settings, key)) for key in _BASE)
    rest = {k: v for k, v in asdict(settings).items() if k not in _BASE and v not in (None, (), [])}
    if rest:
        text += "|" + json.dumps(rest, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def from_row(queue: Queue) -> QueueSettings:
    """The synced row's settings: what the submitter renders."""
    return QueueSettings(queue.partition, queue.memory_limit, queue.time_limit, queue.cores_per_slot,
                         queue.max_slots_per_user, queue.account, queue.qos,
                         tuple(queue.extra_directives or ()), queue.template)


def from_config(queue: QueueConfig, templates_dirs: Sequence[Path] = ()) -> QueueSettings:
    """queues.toml's settings for the queue; its template by its name inside the templates directories."""
    return QueueSettings(queue.partition, queue.memory_limit, queue.time_limit, queue.cores_per_slot,
                         queue.max_slots_per_user, queue.account, queue.qos, tuple(queue.extra_directives),
                         template_name(queue.template, templates_dirs))


def template_name(template: Path | None, templates_dirs: Sequence[Path]) -> str | None:
    """The loader's resolved template as the name render looks up (admins' directories, then the shipped)."""
    if template is None:
        return None
    for directory in [*templates_dirs, package_templates_dir()]:
        if template.is_relative_to(directory.resolve()):
            return template.relative_to(directory.resolve()).as_posix()
    return str(template)


def write_row(queue: Queue, settings: QueueSettings) -> None:
    """Put the settings and their version on the queue's row."""
    queue.partition, queue.memory_limit, queue.time_limit = settings.partition, settings.memory_limit, \
        settings.time_limit
    queue.cores_per_slot, queue.max_slots_per_user = settings.cores_per_slot, settings.max_slots_per_user
    queue.account, queue.qos, queue.template = settings.account, settings.qos, settings.template
    queue.extra_directives = list(settings.extra_directives)
    queue.version = mapping_version(settings)
