"""daemon.substrate pieces without a board: slot splitting and the accelerated clock."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from daemon.events import make_event_batch
from daemon.substrate import ScaledClock, StarvedRun, _split, check_schedule, slot_starts


def _batch(t_ns: list[int], chip: list[int]) -> pa.RecordBatch:
    n = len(t_ns)
    return make_event_batch(
        "b",
        t_host_ns=np.array(t_ns, np.int64),
        t_ns=np.array(t_ns, np.int64),
        chip=np.array(chip, np.int16),
        core=np.arange(n, dtype=np.int16),
        small_core=np.zeros(n, np.int8),
        job_id=np.zeros(n, np.uint8),
        nonce=np.arange(n, dtype=np.uint32),
        valid=np.array([i % 2 == 0 for i in range(n)]),
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=1.0,
        read_id=np.zeros(n, np.int64),
    )


def test_split_puts_each_event_in_its_slot_by_time() -> None:
    b1 = _batch([1050, 999, 1000, 1299], [0, 1, 0, 1])
    b2 = _batch([1100, 1200, 2000], [1, 0, 0])
    starts = np.array([1000, 1100, 1200], np.int64)
    slots = _split([b1, b2], starts, 100, np.array([40.0, 41.0, np.nan]), 2)
    assert [s.t_ns.tolist() for s in slots] == [[1000, 1050], [1100], [1200, 1299]]
    assert [s.start_ns for s in slots] == [1000, 1100, 1200]
    assert all(s.duration_ns == 100 for s in slots)
    assert slots[0].chip.tolist() == [0, 0] and slots[2].chip.tolist() == [0, 1]
    assert slots[0].temperature_c.tolist() == [40.0, 40.0]
    assert slots[0].valid.dtype == bool and slots[0].core.dtype == np.int16


def test_split_at_uneven_starts_uses_the_next_start_as_the_end() -> None:
    b = _batch([1000, 1129, 1130, 1199, 1200, 1301], [0, 0, 0, 0, 0, 0])
    slots = _split([b], np.array([1000, 1130, 1200], np.int64), 100, np.zeros(3), 1)
    assert [s.t_ns.tolist() for s in slots] == [[1000, 1129], [1130, 1199], [1200]]
    assert [s.duration_ns for s in slots] == [130, 70, 100]


def test_slots_start_at_their_pll_writes() -> None:
    due = np.array([0, 100, 200, 300, 400], np.int64)
    # slots 0, 1, 3 written 30-50 ns late; 2 and 4 needed no write: due + median latency (40)
    starts = slot_starts(due, {0: 30, 1: 140, 3: 350, 7: 999, -1: 5})
    assert starts.tolist() == [30, 140, 240, 350, 440]
    assert slot_starts(due, {}).tolist() == due.tolist()
    # a late write never makes a slot start before the previous one
    assert slot_starts(due[:3], {0: 10, 1: 290, 2: 205}).tolist() == [10, 290, 290]


def test_split_with_no_events_gives_empty_slots() -> None:
    slots = _split([], np.array([0, 10], np.int64), 10, np.zeros(2), 1)
    assert [len(s.t_ns) for s in slots] == [0, 0]


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
