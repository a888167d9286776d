"""daemon.substrate over an emulated board: slots, timestamps and setpoints line up with the schedule."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from daemon.config import SimulateConfig
from daemon.substrate import BoardSubstrate, make_substrate
from reservoir.substrate import SlotSchedule, Substrate

pytestmark = pytest.mark.system


def test_emulated_board_substrate_runs_a_schedule() -> None:
    with BoardSubstrate(sim=SimulateConfig(chips=2, time_scale=5.0, seed=3)) as sub:
        assert isinstance(sub, Substrate)
        assert sub.n_chips == 2
        slot_ns = 100_000_000
        freqs = np.array([450.0, 575.0] * 6)
        slots = sub.run(SlotSchedule(freqs, slot_ns))
        assert len(slots) == len(freqs)
        starts = np.array([s.start_ns for s in slots])
        assert (np.diff(starts) == slot_ns).all()
        for s in slots:
            assert s.duration_ns == slot_ns
            assert ((s.t_ns >= s.start_ns) & (s.t_ns < s.start_ns + slot_ns)).all()
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
        argparse.Namespace(simulate=True, chips=3, seed=1, slot_ns=1_000_000, time_scale=50.0)
    )
    try:
        assert sub.n_chips == 3
        assert sub.sim is not None and sub.sim.time_scale <= 0.25 + 1e-9  # 1 ms slots: at most 4 ms real
    finally:
        sub.close()
