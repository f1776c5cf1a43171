"""BEAT's status letters as enums, the state machine's rule sets beside them, and their column type.

Statuses are ``str`` enums stored as BEAT's one-letter values, so a loaded
``split.status == "N"`` holds. The sets (live experiments, unfinished blocks,
active and final splits) and the on-Slurm rule are defined here once; every
module takes them from here (re-exported by bridge.models).
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import String
from sqlalchemy.types import TypeDecorator


class ExperimentStatus(str, enum.Enum):
    """P pending, S scheduled, R running, D done, F failed, C cancelling."""

    PENDING = "P"
    SCHEDULED = "S"
    RUNNING = "R"
    DONE = "D"
    FAILED = "F"
    CANCELLING = "C"


class BlockStatus(str, enum.Enum):
    """N pending, P processing, C done, F failed, L cancelled."""

    PENDING = "N"
    PROCESSING = "P"
    DONE = "C"
    FAILED = "F"
    CANCELLED = "L"


class CacheStatus(str, enum.Enum):
    """N not cached, P processing, C cached."""

    NOT_CACHED = "N"
    PROCESSING = "P"
    CACHED = "C"


class SplitStatus(str, enum.Enum):
    """N queued, P processing, C completed, F failed, L cancelled, K cancelling."""

    QUEUED = "N"
    PROCESSING = "P"
    COMPLETED = "C"
    FAILED = "F"
    CANCELLED = "L"
    CANCELLING = "K"


# The rule sets of the state machine, defined once beside their enums.
LIVE_EXPERIMENT = frozenset({ExperimentStatus.SCHEDULED, ExperimentStatus.RUNNING})
FINAL_EXPERIMENT = frozenset({ExperimentStatus.DONE, ExperimentStatus.FAILED})
UNFINISHED_BLOCK = frozenset({BlockStatus.PENDING, BlockStatus.PROCESSING})
# A split the poller still follows: queued (maybe submitted), running, or being cancelled.
ACTIVE_SPLIT = frozenset({SplitStatus.QUEUED, SplitStatus.PROCESSING, SplitStatus.CANCELLING})
FINAL_SPLIT = frozenset({SplitStatus.COMPLETED, SplitStatus.FAILED, SplitStatus.CANCELLED})


def on_slurm(status: SplitStatus, submission_tag: str | None) -> bool:
    """Whether a split occupies Slurm (or may: claimed before sbatch): running, being cancelled,
    or queued with a submission tag. The same rule as SQL: ``on_slurm_clause`` in submission_db."""
    return status in (SplitStatus.PROCESSING, SplitStatus.CANCELLING) or (
        status == SplitStatus.QUEUED and submission_tag is not None)


class Letter(TypeDecorator[Any]):
    """A status enum stored as its one-letter value; unknown letters are refused."""

    impl = String(1)
    cache_ok = True

    def __init__(self, enum_class: type[enum.Enum]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else self.enum_class(value)
