"""A queue's failure policy in queues.toml: which Slurm failures resubmit a split, where, how often.

Per queue, each optional (off unless configured; Galaxy's resubmit conditions and
Nextflow's `errorStrategy 'retry'` are the models):

    on_node_fail = { retries = 2, exclude_node = true }
    on_out_of_memory = { resubmit_to = "bigmem", retries = 1 }
    on_timeout = { resubmit_to = "long" }

`retries` (default 1) bounds the resubmissions of one split for that failure,
whichever queue each attempt ran on: a chain default -> bigmem -> huge needs
retries = 2 on bigmem, and a loop between two queues ends. `resubmit_to` names
another queue of the same file (default: the queue itself); `exclude_node`
keeps the next attempt off the node the failure happened on (sbatch --exclude).
The decision itself is bridge.resubmission's; `queues check` checks that each
named queue is larger (bridge.queue_lint_failures).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.errors import ConfigError
from bridge.toml_table import Field

MAX_RETRIES = 10
# the poller's failure reason (poller.states) -> the queues.toml key that configures it
KEYS = {"node_fail": "on_node_fail", "out_of_memory": "on_out_of_memory", "timed_out": "on_timeout"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # a queue name, as bridge.queues_config
ON_FAILURE_FIELDS = (
    Field("retries", "integer", 1, "resubmissions of one split for this failure, on whichever queue",
          minimum=1, maximum=MAX_RETRIES),
    Field("resubmit_to", "text", None, "the queue of the next attempt (default: this queue); `queues check` "
          "wants it larger", pattern=_NAME),
    Field("exclude_node", "flag", False, "keep the next attempt off the node this one failed on (sbatch --exclude)"),
)
# queue keys, added to bridge.queues_config.QUEUE_FIELDS (and so to queues.toml's JSON Schema)
_WHAT = {"node_fail": "NODE_FAIL (its node failed)", "out_of_memory": "a memory kill (OUT_OF_MEMORY, or FAILED "
         "with slurmstepd's kill line)", "timed_out": "TIMEOUT (its time limit)"}
FAILURE_FIELDS = tuple(Field(key, "table", None, f"resubmit a split that Slurm ended with {_WHAT[reason]}",
                             fields=ON_FAILURE_FIELDS) for reason, key in KEYS.items())


@dataclass(frozen=True)
class OnFailure:
    """What one kind of failure does on one queue: resubmit up to `retries` times, to `resubmit_to`."""

    retries: int = 1
    resubmit_to: str | None = None  # None: the same queue
    exclude_node: bool = False


@dataclass(frozen=True)
class FailurePolicy:
    """A queue's on_* tables by failure reason ("node_fail", "out_of_memory", "timed_out"); empty: off."""

    rules: tuple[tuple[str, OnFailure], ...] = ()

    def for_reason(self, reason: str | None) -> OnFailure | None:
        return dict(self.rules).get(reason or "")

    def __bool__(self) -> bool:
        return bool(self.rules)


def failure_policy(values: Mapping[str, Any]) -> FailurePolicy:
    """The policy from a queue table's values as read by FAILURE_FIELDS (None: that table is absent)."""
    return FailurePolicy(tuple((reason, OnFailure(**values[key])) for reason, key in KEYS.items()
                               if values.get(key) is not None))


def check_targets(file: object, policies: Mapping[str, FailurePolicy], names: set[str]) -> dict[str, ConfigError]:
    """A ConfigError per queue whose policy resubmits to a queue the file does not define."""
    errors = {}
    for queue, policy in policies.items():
        for reason, rule in policy.rules:
            if rule.resubmit_to is not None and rule.resubmit_to not in names:
                errors[queue] = ConfigError(
                    f"{file}: queues.{queue}.{KEYS[reason]}.resubmit_to = {rule.resubmit_to!r} is invalid: "
                    f"expected a queue of this file: {', '.join(sorted(names))}")
                break
    return errors
