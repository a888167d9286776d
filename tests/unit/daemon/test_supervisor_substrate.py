"""daemon.substrate pieces without a board: slot starts and the accelerated clock (slots: test_windows)."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.substrate import ScaledClock, StarvedRun, check_schedule, slot_starts


def test_slots_start_at_their_pll_writes() -> None:
    due = np.array([0, 100, 200, 300, 400], np.int64)
    # slots 0, 1, 3 written 30-50 ns late; 2 and 4 needed no write: due + median latency (40)
    starts = slot_starts(due, {0: 30, 1: 140, 3: 350, 7: 999, -1: 5})
    assert starts.tolist() == [30, 140, 240, 350, 440]
    assert slot_starts(due, {}).tolist() == due.tolist()
    # a late write never makes a slot start before the previous one
    assert slot_starts(due[:3], {0: 10, 1: 290, 2: 205}).tolist() == [10, 290, 290]


def test_scaled_clock_runs_faster_from_its_start() -> None:
    base = [1_000]
    clock = ScaledClock(50.0, base=lambda: base[0])
    assert clock() == 1_000
    base[0] += 1_000_000
    assert clock() == 1_000 + 50_000_000


def test_a_starved_schedule_is_refused_with_one_clear_message() -> None:
    """More than a tenth of the slots requested over half a slot late: refused; occasional lateness: kept."""
    slot = 100_000_000
    late = np.full(100, 5_000_000, np.int64)
    late[:10] = 60_000_000  # 10 % late: still accepted
    check_schedule(late, slot)
    late[:11] = 60_000_000
    with pytest.raises(StarvedRun, match=r"11 of 100 slots started more than 0\.5 slot late"):
        check_schedule(late, slot)
    check_schedule(np.zeros(0, np.int64), slot)
