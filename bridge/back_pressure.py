"""Back-pressure: how many splits to send in one array while Slurm's submit limits are full.

An association or QOS may cap how many jobs a user or account has submitted
(MaxSubmitJobs, GrpSubmitJobs, MaxSubmitJobsPerUser...; every array element
counts). sbatch then refuses the whole array (bridge.slurm_errors). That is no
fault of the user's splits: they stay queued and go out as room frees.

Per (account, QOS, partition) this keeps, in the daemon's memory only:
- a cap on the array size: a refused array of n splits is tried again at once
  with n // 2 (so one cycle finds the room left in about log2(n) sbatch calls),
  and the cap doubles again with each accepted array that used it all;
- a hold: when even one split is refused, nothing goes to that key until the
  hold ends: 1 s, doubling to 30 s while the limit stays full, and lifted as
  soon as a poll sees one of the bridge's elements change (room may have freed).
Nothing here is a database fact: a restart starts without caps, which costs a
few refused sbatch calls and loses nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST_HOLD = 1.0  # seconds a full limit is left alone before the next try
MAX_HOLD = 30.0  # the hold doubles up to this while the limit stays full


@dataclass(frozen=True)
class Key:
    """What a submit limit is counted over, as far as the bridge can tell: account, QOS and partition."""

    account: str
    qos: str
    partition: str

    def __str__(self) -> str:
        return f"account {self.account or '(default)'}, QOS {self.qos or '(default)'}, partition {self.partition}"


@dataclass
class _State:
    cap: int | None = None  # largest array to try; None: as large as the splits at hand
    hold: float = 0.0  # seconds of the current hold (0: not held)
    until: float = 0.0  # monotonic time the hold ends
    limit: str = ""  # slurmctld's reason of the last refusal


class BackPressure:
    """Array sizes and holds per key; `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._states: dict[Key, _State] = {}
        self.refusals = 0  # sbatch calls refused at a submit limit, since start (metrics)

    def size(self, key: Key, wanted: int) -> int:
        """How many of `wanted` splits to send now: 0 while the key is held."""
        state = self._states.get(key)
        if state is None:
            return wanted
        if state.hold and self.clock() < state.until:
            return 0
        return wanted if state.cap is None else min(wanted, state.cap)

    def refused(self, key: Key, size: int, limit: str) -> None:
        """sbatch refused an array of `size` splits at a submit limit."""
        self.refusals += 1
        state = self._states.setdefault(key, _State())
        state.limit = limit
        if size > 1:
            state.cap = size // 2
            return
        state.cap = 1
        state.hold = min(MAX_HOLD, state.hold * 2) if state.hold else FIRST_HOLD
        state.until = self.clock() + state.hold
        log.warning("submit limit %s reached for %s: splits stay queued, next try in %.0f s or when an element "
                    "ends", limit, key, state.hold)

    def accepted(self, key: Key, size: int) -> None:
        """An array of `size` splits went out: a full cap doubles, a hold is over."""
        state = self._states.get(key)
        if state is None:
            return
        state.hold = state.until = 0.0
        if state.cap is not None and size >= state.cap:
            state.cap *= 2

    def room_freed(self) -> None:
        """One of the bridge's elements changed state: lift every hold now (the cap stays)."""
        for state in self._states.values():
            state.until = 0.0

    def held(self) -> dict[str, str]:
        """The keys held now, each with the limit that holds it (for logs, status and metrics)."""
        now = self.clock()
        return {str(k): s.limit for k, s in self._states.items() if s.hold and now < s.until}
