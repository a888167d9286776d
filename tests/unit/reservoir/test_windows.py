"""The one slot rule (reservoir.windows) and its daemon entry point for event batches (daemon.events)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.events import event_slots, make_event_batch
from reservoir.windows import slot_bounds, window_events


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


def test_batches_cut_into_slots_by_time() -> None:
    b1 = _batch([1050, 999, 1000, 1299], [0, 1, 0, 1])
    b2 = _batch([1100, 1200, 2000], [1, 0, 0])
    starts = np.array([1000, 1100, 1200], np.int64)
    slots = event_slots([b1, b2], starts, 100, 2, np.array([40.0, 41.0, np.nan]))
    assert [s.t_ns.tolist() for s in slots] == [[1000, 1050], [1100], [1200, 1299]]
    assert [s.start_ns for s in slots] == [1000, 1100, 1200]
    assert all(s.duration_ns == 100 for s in slots)
    assert slots[0].chip.tolist() == [0, 0] and slots[2].chip.tolist() == [0, 1]
    assert slots[0].temperature_c.tolist() == [40.0, 40.0]
    assert np.isnan(slots[2].temperature_c).all()
    assert slots[0].valid.dtype == bool and slots[0].core.dtype == np.int16
    assert slots[0].t_ns.dtype == np.int64


def test_a_slot_lasts_until_the_next_start() -> None:
    b = _batch([1000, 1129, 1130, 1199, 1200, 1301], [0] * 6)
    slots = event_slots([b], np.array([1000, 1130, 1200], np.int64), 100, 1, 0.0)
    assert [s.t_ns.tolist() for s in slots] == [[1000, 1129], [1130, 1199], [1200]]
    assert [s.duration_ns for s in slots] == [130, 70, 100]
    # an early next start ends the slot early; a late one extends it (no event falls in a gap)
    t = np.array([5, 10, 19, 20, 25, 35, 40])
    z = np.zeros(len(t))
    late = window_events(t, z, z, z == 0, [10, 19, 30], 10, 1, 50.0)
    assert [s.t_ns.tolist() for s in late] == [[10], [19, 20, 25], [35]]
    assert [s.duration_ns for s in late] == [9, 11, 10]
    assert late[0].temperature_c.tolist() == [50.0] and late[2].start_ns == 30


def test_no_events_and_no_slots() -> None:
    assert [len(s.t_ns) for s in event_slots([], np.array([0, 10], np.int64), 10, 1)] == [0, 0]
    assert window_events([1, 2], [0, 0], [0, 0], [True, True], [], 10, 1) == []


def test_temperature_per_slot_and_chip_and_bad_input() -> None:
    temps = np.array([[40.0, 41.0], [42.0, 43.0]])
    slots = window_events([], [], [], [], [0, 10], 10, 2, temps)
    assert [s.temperature_c.tolist() for s in slots] == temps.tolist()
    with pytest.raises(ValueError, match="non-decreasing"):
        slot_bounds([10, 5], 10)
    with pytest.raises(ValueError, match="length"):
        window_events([1, 2], [0], [0, 0], [True, True], [0], 10, 1)


@given(
    st.lists(st.integers(0, 1000), max_size=60),
    st.lists(st.integers(0, 200), min_size=1, max_size=8),
    st.integers(1, 300),
)
def test_every_event_in_the_covered_span_is_in_exactly_one_slot(
    times: list[int], gaps: list[int], slot_ns: int
) -> None:
    starts = 100 + np.cumsum([0, *gaps[1:]])
    t = np.array(times, np.int64)
    slots = window_events(t, np.zeros(len(t)), np.zeros(len(t)), np.ones(len(t), bool), starts, slot_ns, 1)
    got = np.concatenate([s.t_ns for s in slots])
    covered = t[(t >= starts[0]) & (t < starts[-1] + slot_ns)]
    assert got.tolist() == sorted(covered.tolist())  # each once, in time order
    for s in slots:
        assert np.all((s.t_ns >= s.start_ns) & (s.t_ns < s.start_ns + s.duration_ns))
    assert sum(s.duration_ns for s in slots) == starts[-1] + slot_ns - starts[0]
