"""Retrying transient Slurm errors: exponential backoff with full jitter, bounded."""

from __future__ import annotations

import random
from collections.abc import Iterator

from bridge.config import RetryPolicy


def backoff_delays(policy: RetryPolicy, rng: random.Random | None = None) -> Iterator[float]:
    """The waits between attempts: attempts - 1 delays, each uniform in [0, min(max, base * 2**n)].

    Full jitter (a random wait up to the exponential bound) keeps several bridges
    that hit the same slurmctld hiccup from retrying in lock-step.
    """
    rng = rng or random.Random()
    for n in range(max(policy.attempts - 1, 0)):
        yield rng.uniform(0.0, min(policy.max_delay, policy.base_delay * (2**n)))
