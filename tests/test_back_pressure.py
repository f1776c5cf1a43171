"""Back-pressure at Slurm's submit limits: what sbatch's refusal says, and how many splits go next (pure).

The live behaviour (a real MaxSubmitJobs and a real QOS limit, the experiment
finishing with nothing failed) is tests/integration/test_backpressure.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.back_pressure import FIRST_HOLD, MAX_HOLD, BackPressure, Key
from bridge.slurm import is_transient, permanent_reason, submit_limit_reason

STDERR = Path(__file__).parent / "data" / "stderr"
KEY = Key("physics", "", "cpu")
OTHER = Key("biology", "", "cpu")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("name, limit", [("sbatch_assoc_max_submit.txt", "AssocMaxSubmitJobLimit"),
                                         ("sbatch_qos_max_submit_per_user.txt", "QOSMaxSubmitJobPerUserLimit")])
def test_a_recorded_submit_limit_refusal_names_its_limit(name: str, limit: str) -> None:
    assert submit_limit_reason((STDERR / name).read_text()) == limit


@pytest.mark.parametrize("stderr", [
    "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's "
    "size and/or time limits)",  # the generic last line alone: a size or time limit reads the same
    "sbatch: error: QOSMaxWallDurationPerJobLimit\nsbatch: error: Batch job submission failed: Job violates "
    "accounting/QOS policy (job submit limit, user's size and/or time limits)",
    "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
])
def test_other_policy_refusals_are_no_submit_limit_and_stay_permanent(stderr: str) -> None:
    assert submit_limit_reason(stderr) is None
    assert not is_transient(stderr) and permanent_reason(stderr)


def test_a_refused_array_is_tried_again_at_half_its_size_until_one_split_is_refused() -> None:
    pressure = BackPressure(Clock())
    assert pressure.size(KEY, 8) == 8
    sizes = []
    for _ in range(4):  # the limit is full: every size refused
        size = pressure.size(KEY, 8)
        sizes.append(size)
        pressure.refused(KEY, size, "AssocMaxSubmitJobLimit")
    assert sizes == [8, 4, 2, 1]
    assert pressure.size(KEY, 8) == 0  # held after one split was refused
    assert pressure.held() == {str(KEY): "AssocMaxSubmitJobLimit"}
    assert pressure.size(OTHER, 8) == 8  # another account is not held back
    assert pressure.refusals == 4


def test_a_hold_doubles_up_to_its_cap_while_the_limit_stays_full_and_ends_with_an_accepted_array() -> None:
    clock = Clock()
    pressure = BackPressure(clock)
    holds = []
    for _ in range(8):
        pressure.refused(KEY, 1, "QOSMaxSubmitJobPerUserLimit")
        held_from = clock.now
        while pressure.size(KEY, 5) == 0:
            clock.now += 0.25
        holds.append(clock.now - held_from)
    assert holds[0] == pytest.approx(FIRST_HOLD) and holds[1] == pytest.approx(2 * FIRST_HOLD)
    assert max(holds) == pytest.approx(MAX_HOLD) and holds == sorted(holds)
    pressure.accepted(KEY, 1)
    pressure.refused(KEY, 1, "QOSMaxSubmitJobPerUserLimit")
    assert pressure.size(KEY, 5) == 0
    clock.now += FIRST_HOLD  # after an accepted array the next hold starts short again
    assert pressure.size(KEY, 5) == 1


def test_room_freed_lifts_a_hold_at_once_and_accepted_arrays_grow_the_cap_back() -> None:
    pressure = BackPressure(Clock())
    pressure.refused(KEY, 4, "AssocMaxSubmitJobLimit")
    pressure.refused(KEY, 2, "AssocMaxSubmitJobLimit")
    pressure.refused(KEY, 1, "AssocMaxSubmitJobLimit")
    assert pressure.size(KEY, 10) == 0
    pressure.room_freed()
    assert pressure.size(KEY, 10) == 1 and pressure.held() == {}
    pressure.accepted(KEY, 1)
    assert pressure.size(KEY, 10) == 2
    pressure.accepted(KEY, 2)
    assert pressure.size(KEY, 10) == 4
    pressure.accepted(KEY, 3)  # an array smaller than the cap says nothing about more room
    assert pressure.size(KEY, 10) == 4
