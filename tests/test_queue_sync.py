"""The narrowing rule, the sync plan and the three-way diff (bridge.queue_sync), and the mapping version."""

from __future__ import annotations

from dataclasses import replace

from bridge.queue_settings import QueueSettings, mapping_version
from bridge.queue_sync import QueueState, Use, diff_queues, narrowing, plan_sync

BASE = QueueSettings("cpu", memory_limit=1000, time_limit=30, cores_per_slot=2, max_slots_per_user=4)
OLD = QueueState(BASE, (("Python", "3.11"),))
USE = Use(7, "alice/exp", "train", "P", job_id=3)


def state(**changes) -> QueueState:
    envs = changes.pop("environments", OLD.environments)
    return QueueState(replace(BASE, **changes), envs)


def test_smaller_limits_another_partition_removal_and_lost_environments_narrow():
    assert narrowing(OLD, None) == ["removed"]
    assert narrowing(OLD, state(partition="long")) == ["partition cpu -> long"]
    for key in ("memory_limit", "time_limit", "cores_per_slot", "max_slots_per_user"):
        assert narrowing(OLD, state(**{key: getattr(BASE, key) - 1})) == [
            f"{key} {getattr(BASE, key)} -> {getattr(BASE, key) - 1}"]
    assert narrowing(OLD, state(environments=(("Python", "3.12"),))) == ["environments removed: Python-3.11"]


def test_larger_limits_new_environments_and_other_extras_do_not_narrow():
    wider = state(memory_limit=2000, time_limit=60, cores_per_slot=4, max_slots_per_user=8, account="proj",
                  qos="high", extra_directives=("--constraint=intel",), template="gpu.sbatch.j2",
                  environments=(("Python", "3.11"), ("Python", "3.12")))
    assert narrowing(OLD, wider) == []


def test_a_plan_is_refused_only_where_a_narrowed_queue_is_used():
    file = {"a": state(memory_limit=500), "b": state(memory_limit=500), "c": state(time_limit=99),
            "new": state(), "same": OLD}
    database = {"a": OLD, "b": OLD, "c": OLD, "gone": OLD, "same": OLD}
    plan = {c.queue: c for c in plan_sync(file, database, {"a": [USE], "c": [USE], "gone": [USE]})}
    assert set(plan) == {"a", "b", "c", "new", "gone"}  # "same" is unchanged: not listed
    assert plan["a"].refused and plan["a"].affected == (USE,)
    assert not plan["b"].refused and plan["b"].narrowing  # narrowed, but nothing live uses it
    assert not plan["c"].refused and plan["c"].changes == ("time_limit: 30 -> 99",)
    assert plan["gone"].refused and plan["gone"].action == "remove" and plan["gone"].version is None
    assert plan["new"].action == "add" and plan["new"].version == mapping_version(BASE)
    assert plan["a"].line() == (f"a: update as version {mapping_version(replace(BASE, memory_limit=500))} "
                                "(memory_limit: 1000 -> 500): narrows (memory_limit 1000 -> 500) "
                                "a queue 1 live block(s) use")


def test_diff_names_each_side_and_missing_partitions():
    file = {"a": state(memory_limit=500, account="proj"), "b": state(partition="gpu"), "new": state()}
    database = {"a": OLD, "b": OLD, "old": state(partition="gone")}
    lines = [d.line() for d in diff_queues(file, database, {"cpu", "long"})]
    assert lines == [
        "a: memory_limit: file 500, database 1000 (sync writes the file's)",
        "a: account: file 'proj', database none (sync writes the file's)",
        "b: partition: file 'gpu', database 'cpu' (sync writes the file's)",
        "b: partition: 'gpu' (file) is not a partition of the cluster (it has: cpu, long)",
        "new: queue: in the file, not in the database (sync adds it)",
        "old: queue: in the database, not in the file (sync removes it)",
        "old: partition: 'gone' (database) is not a partition of the cluster (it has: cpu, long)",
    ]
    assert diff_queues(file, file, None) == []  # agreeing sides, cluster not read: nothing to say


def test_the_version_covers_every_rendered_field_and_keeps_the_old_fingerprint_without_extras():
    import hashlib

    old_style = hashlib.sha256(b"cpu|1000|30|2|4").hexdigest()[:12]  # bridge.queues before account & co.
    assert mapping_version(BASE) == old_style
    versions = {mapping_version(replace(BASE, **{key: value})) for key, value in (
        ("account", "a"), ("qos", "q"), ("extra_directives", ("--constraint=x",)), ("template", "t.j2"),
        ("partition", "long"), ("memory_limit", 1), ("time_limit", 1), ("cores_per_slot", 1),
        ("max_slots_per_user", 1))}
    assert len(versions) == 9 and old_style not in versions
    assert QueueSettings.from_json(replace(BASE, extra_directives=("--x=1",)).to_json()) == replace(
        BASE, extra_directives=("--x=1",))


def test_a_partition_both_sides_name_and_the_cluster_lacks_is_said_once():
    (difference,) = diff_queues({"a": state(partition="gpu")}, {"a": state(partition="gpu")}, {"cpu"})
    assert difference.line() == ("a: partition: 'gpu' (file and database) is not a partition of the cluster "
                                 "(it has: cpu)")
