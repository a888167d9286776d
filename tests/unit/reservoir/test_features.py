"""Event features per slot and chip, checked by hand and against a plain per-slot reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservoir.features import (
    FEATURES,
    LOG_EXP_SD,
    features_per_slot,
    noise_floor,
    states_from_slots,
)
from reservoir.substrate import EventSlot


def _slot(
    t: list[int], chip: list[int], core: list[int], valid: list[bool], temp: list[float], start: int = 0
) -> EventSlot:
    return EventSlot(
        np.array(t, dtype=np.int64),
        np.array(chip, dtype=np.int16),
        np.array(core, dtype=np.int16),
        np.array(valid, dtype=bool),
        np.array(temp),
        start,
        1_000_000,
    )


def test_features_by_hand() -> None:
    s = _slot(
        [100, 1_100, 3_100, 200, 5_000],
        [0, 0, 0, 1, 1],
        [5, 5, 9, 1, 2],
        [True, False, True, True, True],
        [50.0, 60.0],
    )
    f = features_per_slot([s], 2)[0]
    assert f.shape == (2, len(FEATURES))
    iv = np.log(np.array([1_000, 2_000]) / 1e9)
    np.testing.assert_allclose(f[0], [3, iv.mean(), iv.std(ddof=1), 1 / 3, 2 / 3, 50.0])
    np.testing.assert_allclose(f[1], [2, np.log(4_800 / 1e9), 0.0, 0.0, 1.0, 60.0])
    empty = features_per_slot([_slot([], [], [], [], [40.0, 41.0])], 2)[0]
    np.testing.assert_array_equal(empty[:, :5], 0.0)
    np.testing.assert_array_equal(empty[:, 5], [40.0, 41.0])


def _reference(slot: EventSlot, n_chips: int) -> np.ndarray:
    out = np.zeros((n_chips, len(FEATURES)))
    out[:, 5] = slot.temperature_c
    for c in range(n_chips):
        sel = slot.chip == c
        t = np.sort(slot.t_ns[sel])
        if t.size == 0:
            continue
        out[c, 0] = t.size
        out[c, 3] = np.mean(~slot.valid[sel])
        out[c, 4] = np.unique(slot.core[sel]).size / t.size
        if t.size >= 2:
            liv = np.log(np.maximum(np.diff(t) / 1e9, 1e-9))
            out[c, 1] = liv.mean()
            if t.size >= 3:
                out[c, 2] = liv.std(ddof=1)
    return out


@given(st.integers(0, 2**31), st.integers(1, 3), st.integers(1, 6))
def test_vectorised_equals_reference(seed: int, n_chips: int, n_slots: int) -> None:
    rng = np.random.default_rng(seed)
    slots = []
    for i in range(n_slots):
        n = int(rng.integers(0, 12))
        slots.append(
            _slot(
                sorted(rng.integers(0, 10**6, n).tolist()),
                rng.integers(0, n_chips, n).tolist(),
                rng.integers(0, 112, n).tolist(),
                (rng.random(n) > 0.3).tolist(),
                rng.uniform(40, 60, n_chips).tolist(),
                start=i,
            )
        )
    got = features_per_slot(slots, n_chips)
    for i, s in enumerate(slots):
        np.testing.assert_allclose(got[i], _reference(s, n_chips), atol=1e-9)
    st_ = states_from_slots(slots, 1, n_slots, n_chips)
    assert st_.shape == (1, n_slots * n_chips * len(FEATURES))


def test_states_need_whole_steps() -> None:
    s = _slot([], [], [], [], [40.0])
    with pytest.raises(ValueError, match="expected 4 slots"):
        states_from_slots([s, s, s], 2, 2, 1)


def test_noise_floor_from_counts() -> None:
    slots = [
        _slot(list(range(0, 25 * 1000, 1000)), [0] * 25, [0] * 25, [True] * 20 + [False] * 5, [40.0])
    ] * 4
    nf = noise_floor(slots, 1)
    assert nf["mean_count_per_slot"] == 25.0
    assert nf["count"] == pytest.approx(1 / 5)
    assert nf["log_iv_mean"] == pytest.approx(LOG_EXP_SD / np.sqrt(24))
    assert nf["invalid_frac"] == pytest.approx(np.sqrt(0.2 * 0.8 / 25))
    assert noise_floor([], 1)["count"] == float("inf")
