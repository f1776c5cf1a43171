"""The failure policies of the mapping (bridge.failure_policy): each resubmission goes to a larger queue.

Pure rules over the loaded queues, one Finding each: an out-of-memory retry
must get more memory, a timed-out one more time, or it fails the same way
again. The loader has already refused a `resubmit_to` naming no queue of the
file; a named queue the loader refused for another reason is named here.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.failure_policy import KEYS
from bridge.queue_lint import Finding
from bridge.queues_config import QueueConfig

# failure reason -> (the limit a retry needs more of, its unit)
LARGER = {"out_of_memory": ("memory_limit", "MB"), "timed_out": ("time_limit", "min")}


def failure_findings(queue: QueueConfig, queues: Mapping[str, QueueConfig]) -> list[Finding]:
    """The queue's on_out_of_memory / on_timeout against the queues they resubmit to."""
    found = []
    for reason, rule in queue.failures.rules:
        key = f"{KEYS[reason]}.resubmit_to"
        target = queues.get(rule.resubmit_to or queue.name)
        if target is None:
            found.append(Finding(queue.name, key, rule.resubmit_to, "names a queue that did not load",
                                 ", ".join(sorted(queues)), "resubmit_target"))
            continue
        if reason not in LARGER:
            continue
        limit, unit = LARGER[reason]
        mine, theirs = getattr(queue, limit), getattr(target, limit)
        if theirs <= mine:
            what = "resubmits to the same queue" if target is queue else f"queue {target.name!r} has {theirs} {unit}"
            found.append(Finding(queue.name, key, rule.resubmit_to or queue.name,
                                 f"{what}: the retry gets no more {limit} than the {mine} {unit} it failed with",
                                 f"a queue with {limit} over {mine} {unit}", "resubmit_larger"))
    return found
