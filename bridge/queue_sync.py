"""What a `queues sync` would change, and which changes BEAT's rule refuses: pure.

BEAT's rule (beat.web's backend: a queue in use cannot be deleted or made
smaller): a queue that live work uses, that is a block not final of an
experiment not final, is neither removed nor narrowed unless the admin forces
it. Narrowing is: another partition, a smaller memory_limit, time_limit,
cores_per_slot or max_slots_per_user, or an environment removed. Anything else
(a larger limit, another account, QOS, extra directive or template) is a new
mapping version: new jobs get it, jobs already submitted keep theirs
(bridge.queue_versions).

`diff_queues` compares the three sides an admin can get out of step: the
file (queues.toml), the database (the synced Queue rows the submitter
renders from) and the cluster (do the partitions exist).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

from bridge.queue_settings import QueueSettings, mapping_version

LIMITS = ("memory_limit", "time_limit", "cores_per_slot", "max_slots_per_user")


@dataclass(frozen=True)
class QueueState:
    """One side's view of a queue: what its scripts render and the environments it accepts."""

    settings: QueueSettings
    environments: tuple[tuple[str, str], ...] = ()  # (name, version), sorted


@dataclass(frozen=True)
class Use:
    """A block not final, of an experiment not final, on the queue: live work a narrowing would touch."""

    experiment_id: int
    experiment: str  # author/name
    block: str
    block_status: str
    job_id: int | None = None

    def text(self) -> str:
        job = f", job {self.job_id}" if self.job_id is not None else ""
        return f"experiment {self.experiment_id} ({self.experiment}) block {self.block!r} ({self.block_status}{job})"


@dataclass(frozen=True)
class QueueChange:
    """What sync does to one queue: add, update or remove it, and why it is refused if it is."""

    queue: str
    action: str  # "add", "update", "remove"
    changes: tuple[str, ...] = ()  # "memory_limit: 300 -> 600"
    narrowing: tuple[str, ...] = ()
    affected: tuple[Use, ...] = ()
    version: str | None = None  # the mapping version new jobs get (None: removed)

    @property
    def refused(self) -> bool:
        """Removing or narrowing a queue live work uses: refused unless forced."""
        return bool(self.narrowing and self.affected)

    def line(self) -> str:
        text = f"{self.queue}: {self.action}" + (f" as version {self.version}" if self.version else "")
        if self.changes:
            text += f" ({'; '.join(self.changes)})"
        if self.refused:
            text += f": narrows ({'; '.join(self.narrowing)}) a queue {len(self.affected)} live block(s) use"
        return text

    def as_dict(self) -> dict:
        return {"queue": self.queue, "action": self.action, "changes": list(self.changes),
                "narrowing": list(self.narrowing), "refused": self.refused,
                "affected": [asdict(u) for u in self.affected], "version": self.version}


def narrowing(old: QueueState, new: QueueState | None) -> list[str]:
    """Why going from `old` to `new` (None: removed) narrows the queue; [] when it does not."""
    if new is None:
        return ["removed"]
    reasons = []
    if new.settings.partition != old.settings.partition:
        reasons.append(f"partition {old.settings.partition} -> {new.settings.partition}")
    for key in LIMITS:
        before, after = getattr(old.settings, key), getattr(new.settings, key)
        if after < before:
            reasons.append(f"{key} {before} -> {after}")
    gone = sorted(set(old.environments) - set(new.environments))
    if gone:
        reasons.append(f"environments removed: {', '.join(f'{n}-{v}' for n, v in gone)}")
    return reasons


def changed_fields(old: QueueState, new: QueueState) -> list[str]:
    """Each field that differs, as `key: old -> new`."""
    found = [f"{f.name}: {_show(getattr(old.settings, f.name))} -> {_show(getattr(new.settings, f.name))}"
             for f in fields(QueueSettings) if getattr(old.settings, f.name) != getattr(new.settings, f.name)]
    if old.environments != new.environments:
        found.append(f"environments: {_envs(old.environments)} -> {_envs(new.environments)}")
    return found


def plan_sync(file: Mapping[str, QueueState], database: Mapping[str, QueueState],
              uses: Mapping[str, Sequence[Use]]) -> list[QueueChange]:
    """The changes that bring the database to the file, by queue name; a queue unchanged is not listed."""
    plan = []
    for name in sorted(set(file) | set(database)):
        old, new = database.get(name), file.get(name)
        if old is None:
            assert new is not None
            plan.append(QueueChange(name, "add", tuple(_items(new)), version=mapping_version(new.settings)))
            continue
        changes = changed_fields(old, new) if new is not None else []
        if new is not None and not changes:
            continue
        narrows = tuple(narrowing(old, new))
        plan.append(QueueChange(name, "remove" if new is None else "update", tuple(changes), narrows,
                                tuple(uses.get(name, ())) if narrows else (),
                                mapping_version(new.settings) if new is not None else None))
    return plan


@dataclass(frozen=True)
class Difference:
    """One way the file, the database and the cluster disagree about a queue."""

    queue: str
    key: str
    file: str | None  # None: the file has no such queue
    database: str | None
    problem: str

    def line(self) -> str:
        return f"{self.queue}: {self.key}: {self.problem}"

    def as_dict(self) -> dict:
        return asdict(self)


def diff_queues(file: Mapping[str, QueueState], database: Mapping[str, QueueState],
                partitions: Collection[str] | None) -> list[Difference]:
    """File vs database field by field, then every partition either names vs the cluster's (None: not read)."""
    found = []
    for name in sorted(set(file) | set(database)):
        new, old = file.get(name), database.get(name)
        if old is None:
            found.append(Difference(name, "queue", "present", None, "in the file, not in the database (sync adds it)"))
        elif new is None:
            found.append(Difference(name, "queue", None, "present",
                                    "in the database, not in the file (sync removes it)"))
        else:
            found += [_field(name, key, a, b) for key, a, b in _pairs(new, old) if a != b]
        if partitions is not None:
            found += _missing_partitions(name, new, old, partitions)
    return found


def _missing_partitions(name: str, new: QueueState | None, old: QueueState | None,
                        partitions: Collection[str]) -> list[Difference]:
    """A partition the cluster lacks, once per name (file and database may name the same)."""
    sides: dict[str, list[str]] = {}
    for side, state in (("file", new), ("database", old)):
        if state is not None and state.settings.partition not in partitions:
            sides.setdefault(state.settings.partition, []).append(side)
    shown = (_show(new.settings.partition) if new else None, _show(old.settings.partition) if old else None)
    return [Difference(name, "partition", *shown, f"{partition!r} ({' and '.join(where)}) is not a partition "
                       f"of the cluster (it has: {', '.join(sorted(partitions)) or 'none'})")
            for partition, where in sides.items()]


def _pairs(new: QueueState, old: QueueState) -> list[tuple[str, object, object]]:
    pairs: list[tuple[str, object, object]] = [
        (f.name, getattr(new.settings, f.name), getattr(old.settings, f.name)) for f in fields(QueueSettings)]
    pairs.append(("environments", new.environments, old.environments))
    return pairs


def _field(name: str, key: str, file: object, database: object) -> Difference:
    shown = (_envs(file), _envs(database)) if key == "environments" else (_show(file), _show(database))  # type: ignore[arg-type]
    return Difference(name, key, shown[0], shown[1], f"file {shown[0]}, database {shown[1]} (sync writes the file's)")


def _items(state: QueueState) -> list[str]:
    items = [f"{k}: {_show(v)}" for k, v in asdict(state.settings).items() if v not in (None, (), [])]
    return items + [f"environments: {_envs(state.environments)}"] if state.environments else items


def _envs(environments: object) -> str:
    return "[" + ", ".join(f"{n}-{v}" for n, v in environments) + "]"  # type: ignore[union-attr]


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return "none" if value is None else repr(value) if isinstance(value, str) else str(value)
