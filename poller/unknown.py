"""Since when each split has shown a Slurm state missing from poller.states' table, and when to say so.

An unknown state is kept active, never guessed final (poller.states); but a
split stuck in one must not stay silent. The first sight is one warning; past
`bound` seconds in that same state, one error, and the split is counted in
every poll's report (PollReport.unknown, shown by `run`) until its state
changes. The memory lives in the daemon (poller.loop.BridgeLoop): a restart
starts the clocks again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

UNKNOWN_STATE_BOUND = 600.0  # seconds a split may show an unknown Slurm state before it is reported


@dataclass
class UnknownStates:
    """Per split in an unknown state: (state, first seen, reported)."""

    bound: float = UNKNOWN_STATE_BOUND
    _seen: dict[int, tuple[str, float, bool]] = field(default_factory=dict, repr=False)

    def overdue(self, split_id: int, element_id: str, state: str, now: float) -> bool:
        """Note that the split shows `state` (unknown) at `now`; True once it has for longer than the bound."""
        entry = self._seen.get(split_id)
        if entry is None or entry[0] != state:
            log.warning("split %s (Slurm %s) shows unknown Slurm state %r: kept active", split_id, element_id,
                        state)
            entry = (state, now, False)
        since, reported = entry[1], entry[2]
        late = now - since > self.bound
        if late and not reported:
            log.error("split %s (Slurm %s) has shown unknown Slurm state %r for %.0f s: still kept active, "
                      "never guessed final; check it with squeue/sacct", split_id, element_id, state, now - since)
            reported = True
        self._seen[split_id] = (state, since, reported)
        return late

    def keep_only(self, split_ids: Iterable[int]) -> None:
        """Forget every split not in `split_ids` (its state became known, or it is no longer active)."""
        keep = set(split_ids)
        for split_id in [s for s in self._seen if s not in keep]:
            del self._seen[split_id]
