"""daemon.substrate over an emulated board: slots, timestamps and setpoints line up with the schedule."""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytest

from daemon.config import SimulateConfig
from daemon.substrate import STARVED_MAX_FRAC, BoardSubstrate, make_substrate
from reservoir.substrate import SlotSchedule, Substrate

pytestmark = pytest.mark.system


@pytest.mark.parametrize("emulated_time", [True, False], ids=["emulated-time", "host-time"])
def test_emulated_board_substrate_runs_a_schedule(emulated_time: bool) -> None:
    sim = SimulateConfig(chips=2, time_scale=4.0, seed=3)
    with BoardSubstrate(sim=sim, emulated_time=emulated_time) as sub:
        assert isinstance(sub, Substrate)
        assert sub.n_chips == 2
        slot_ns = 100_000_000
        freqs = np.array([450.0, 575.0] * 6)
        slots = sub.run(SlotSchedule(freqs, slot_ns))
        assert len(slots) == len(freqs)
        starts = np.array([s.start_ns for s in slots])
        # slots start at their PLL writes: contiguous, each about a slot long
        assert (np.diff(starts) == [s.duration_ns for s in slots[:-1]]).all()
        assert slots[-1].duration_ns == slot_ns
        assert (np.diff(starts) >= 0).all() and starts[-1] - starts[0] >= (len(slots) - 2) * slot_ns
        assert len(sub.last_write_latency_ns) >= 6 and (sub.last_write_latency_ns >= 0).all()
        for s in slots:
            assert ((s.t_ns >= s.start_ns) & (s.t_ns < s.start_ns + s.duration_ns)).all()
            assert s.chip.dtype == np.int16 and s.core.dtype == np.int16 and s.valid.dtype == bool
            assert s.temperature_c.shape == (2,) and np.isfinite(s.temperature_c).all()
        counts = np.array([len(s.t_ns) for s in slots])
        # two chips at ~100 nonces/s each (difficulty 1, 450-575 MHz): ~20 per 100 ms slot
        assert 8 <= counts.mean() <= 40
        assert set(np.concatenate([s.chip for s in slots]).tolist()) == {0, 1}
        # the substrate keeps running between calls (a physical state)
        again = sub.run(SlotSchedule(np.full(3, 500.0), slot_ns))
        assert again[0].start_ns > slots[-1].start_ns


def test_make_substrate_needs_simulate_or_a_board(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="--simulate"):
        make_substrate(argparse.Namespace(simulate=False, config=None))
    sub = make_substrate(
        argparse.Namespace(simulate=True, host_time=True, chips=3, seed=1, slot_ns=1_000_000, time_scale=50.0)
    )
    try:
        assert sub.n_chips == 3 and sub.max_late_frac == STARVED_MAX_FRAC  # the bench refuses starved runs
        assert sub.sim is not None and sub.sim.time_scale <= 0.04 + 1e-9  # 1 ms slots: at least 25 ms real
        assert not sub.emulated_time
    finally:
        sub.close()
    sub = make_substrate(argparse.Namespace(simulate=True, chips=2, seed=1, slot_ns=1_000_000))
    try:
        assert sub.emulated_time and sub.n_chips == 2  # the default: emulated time
        assert sub.max_late_frac is None and sub.sim is not None and sub.sim.time_scale == 1.0
    finally:
        sub.close()
    with pytest.raises(ValueError, match="emulated board"):
        BoardSubstrate(board=None, sim=None, emulated_time=True)


@pytest.mark.parametrize("emulated_time", [True, False], ids=["emulated-time", "host-time"])
def test_a_setpoint_step_shows_in_the_count_of_its_own_slot(emulated_time: bool) -> None:
    """Random 400/575 MHz slots, 100 ms (at 4x: 25 ms of host time, MIN_REAL_SLOT_S, or on emulated time): the
    count regressed on the setpoints of the same and the previous slot follows the same slot's only."""
    rng = np.random.default_rng(7)
    n = 160
    freqs = rng.choice([400.0, 575.0], size=n)
    slot_ns = 100_000_000
    sim = SimulateConfig(chips=3, time_scale=4.0, seed=5)
    with BoardSubstrate(sim=sim, emulated_time=emulated_time) as sub:
        slots = sub.run(SlotSchedule(freqs, slot_ns))
        lat = sub.last_write_latency_ns
    dur = np.array([s.duration_ns for s in slots], dtype=np.float64)
    counts = np.array([len(s.t_ns) for s in slots], dtype=np.float64)
    ok = dur >= slot_ns / 2  # a host stall longer than half a slot leaves a short slot: skip those
    ok[0] = False
    assert ok.mean() > 0.8
    if emulated_time:  # no host stall: every slot is a slot long to within a control tick (2 ms, emulated)
        assert (np.abs(dur[:-1] - slot_ns) <= 2_000_000).all()
    per_slot = counts / np.maximum(dur, 1.0) * slot_ns  # events per nominal slot
    X = np.column_stack([np.ones(n), freqs, np.roll(freqs, 1)])[ok]
    beta = np.linalg.lstsq(X, per_slot[ok], rcond=None)[0]
    # the rate is proportional to the frequency: the expected lag-0 slope is mean count / mean frequency
    expect = per_slot[ok].mean() / freqs.mean()
    assert beta[1] > 0.5 * expect, (beta, expect)
    assert abs(beta[2]) < 0.35 * beta[1], (beta, expect)
    # slots start at their writes: every frequency change was written, after it was due
    changed = int(np.count_nonzero(np.diff(freqs))) + 1
    assert len(lat) >= changed // 2 and (lat >= 0).all()
    assert (np.diff([s.start_ns for s in slots]) >= 0).all()


def test_on_emulated_time_the_events_are_a_function_of_the_seed_alone() -> None:
    """Two runs a wall-clock second apart: identical event times, core ids and share validity. (Jobs carry
    ntime, and the emulated chips really hash the header: at 1.10 V and 575 MHz many nonces are errors, whose
    search draws from the chip's random stream a number of times that depends on the header.)"""

    def events() -> list[tuple[bytes, bytes, bytes]]:
        sim = SimulateConfig(chips=2, seed=4)
        with BoardSubstrate(sim=sim, emulated_time=True, voltage_v=1.10) as sub:
            slots = sub.run(SlotSchedule(np.full(40, 575.0), 100_000_000))
        assert sum(int(np.count_nonzero(~s.valid)) for s in slots) > 20  # errors were searched
        return [(s.t_ns.tobytes(), s.core.tobytes(), s.valid.tobytes()) for s in slots]

    first = events()
    time.sleep(1.1)  # a new ntime second on the host's clock
    assert events() == first
