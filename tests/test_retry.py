"""Backoff delays: bounded count, exponential bound, jittered."""

from __future__ import annotations

import random

from bridge.config import RetryPolicy
from bridge.retry import backoff_delays


def test_one_delay_between_each_pair_of_attempts_within_the_exponential_bound():
    delays = list(backoff_delays(RetryPolicy(attempts=6, base_delay=0.5, max_delay=3.0), random.Random(1)))
    assert len(delays) == 5
    for n, delay in enumerate(delays):
        assert 0.0 <= delay <= min(3.0, 0.5 * 2**n)


def test_delays_are_jittered_not_lock_step():
    policy = RetryPolicy(attempts=4, base_delay=1.0, max_delay=10.0)
    assert list(backoff_delays(policy, random.Random(1))) != list(backoff_delays(policy, random.Random(2)))


def test_a_single_attempt_never_waits():
    assert list(backoff_delays(RetryPolicy(attempts=1, base_delay=1.0, max_delay=1.0))) == []
