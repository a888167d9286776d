"""The asic reservoir end to end on the toy substrates, through the Substrate protocol only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservoir.asic import AsicReservoir, n_sub_for_size
from reservoir.bench import run_bench
from reservoir.features import FEATURES
from reservoir.substrate import PoissonSubstrate, RateModelSubstrate, SlotSchedule, Substrate
from reservoir.tasks import SeriesTask, narma10_task


def test_toy_substrates_satisfy_the_protocol() -> None:
    assert isinstance(PoissonSubstrate(), Substrate)
    assert isinstance(RateModelSubstrate(), Substrate)


def test_rate_model_is_seeded_and_follows_frequency() -> None:
    sched = SlotSchedule(np.repeat([400.0, 575.0], 200), slot_ns=1_000_000)
    a = RateModelSubstrate(rate_hz=50_000, seed=3).run(sched)
    b = RateModelSubstrate(rate_hz=50_000, seed=3).run(sched)
    assert len(a) == 400
    np.testing.assert_array_equal(np.concatenate([s.t_ns for s in a]), np.concatenate([s.t_ns for s in b]))
    low = np.mean([s.t_ns.size for s in a[50:200]])
    high = np.mean([s.t_ns.size for s in a[250:]])
    assert high / low == pytest.approx(575 / 400, rel=0.1)
    for s in a[:3]:
        assert np.all((s.t_ns >= s.start_ns) & (s.t_ns < s.start_ns + s.duration_ns))
        assert np.all(np.diff(s.t_ns) >= 0)


def test_poisson_substrate_ignores_setpoints() -> None:
    lo = PoissonSubstrate(rate_hz=50_000, seed=1).run(SlotSchedule(np.full(300, 400.0), 1_000_000))
    hi = PoissonSubstrate(rate_hz=50_000, seed=1).run(SlotSchedule(np.full(300, 575.0), 1_000_000))
    np.testing.assert_array_equal(np.concatenate([s.t_ns for s in lo]), np.concatenate([s.t_ns for s in hi]))


@given(st.lists(st.floats(-3, 3), min_size=1, max_size=20), st.integers(0, 100))
def test_setpoints_stay_in_range(u: list[float], seed: int) -> None:
    res = AsicReservoir(PoissonSubstrate(), 1, n_sub=5, f_min=420.0, f_max=500.0, seed=seed)
    f = res.setpoints(np.array(u)[:, None])
    assert f.shape == (5 * len(u),)
    assert np.all((f >= 420.0) & (f <= 500.0))


def test_mask_fixed_by_seed() -> None:
    u = np.linspace(-1, 1, 7)[:, None]
    a = AsicReservoir(PoissonSubstrate(), 1, n_sub=4, seed=2).setpoints(u)
    b = AsicReservoir(PoissonSubstrate(), 1, n_sub=4, seed=2).setpoints(u)
    c = AsicReservoir(PoissonSubstrate(), 1, n_sub=4, seed=3).setpoints(u)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(ValueError, match="f_max"):
        AsicReservoir(PoissonSubstrate(), 1, f_min=500, f_max=400)


def test_state_size() -> None:
    assert n_sub_for_size(100, 1) == 17
    res = AsicReservoir(RateModelSubstrate(n_chips=2), 1, n_sub=3)
    S = res.run(np.zeros((4, 1)))
    assert S.shape == (4, 3 * 2 * len(FEATURES)) == (4, res.state_dim)


def test_asic_decodes_its_input_and_the_null_does_not() -> None:
    """Target = the current input: the rate model carries it, the Poisson null cannot."""
    rng = np.random.default_rng(0)
    u = rng.uniform(0, 1, (1000, 1))
    task = SeriesTask("identity", u, u.copy(), 50, 600, 350, "nmse")
    sub = {"substrate": lambda seed: RateModelSubstrate(rate_hz=50_000, seed=seed)}
    asic = run_bench(task, "asic", size=30, options=sub).summary
    null = run_bench(task, "poisson-null", size=30, options={"rate_hz": 50_000}).summary
    assert asic["value"] < 0.6, asic  # ~0.37: shot noise at ~50 events per slot limits it
    assert null["value"] > 0.9, null
    assert asic["noise_floor"]["mean_count_per_slot"] == pytest.approx(50, rel=0.2)


def test_asic_narma10_end_to_end_with_noise_floor() -> None:
    s = run_bench(
        narma10_task(n_train=500, n_test=300), "asic", size=30, seeds=2, options={"substrate": "rate-model"}
    ).summary
    assert s["reservoir"] == "asic" and s["state_dim"] == 30
    assert np.isfinite(s["value"]) and s["ci95"] is not None
    assert set(s["noise_floor"]) >= {"mean_count_per_slot", "count", "log_iv_mean", "invalid_frac"}


def test_asic_result_carries_its_matched_null() -> None:
    sub = {"substrate": lambda seed: RateModelSubstrate(rate_hz=30_000, seed=seed)}
    s = run_bench(
        narma10_task(n_train=300, n_test=200), "asic", size=12, seeds=2, options=sub, with_null=True
    )
    null = s.summary["null"]
    # the rate model runs at 30,000/s x f/485 MHz around the 487.5 MHz mid-point of the range
    assert null["rate_hz"] == pytest.approx(30_000 * 487.5 / 485, rel=0.05)
    assert len(null["per_seed"]) == 2 and 0.85 < null["value"] < 1.4


def test_asic_needs_a_substrate() -> None:
    with pytest.raises(ValueError, match="substrate"):
        run_bench(narma10_task(n_train=100, n_test=50), "asic")


@given(
    counts=st.lists(st.integers(0, 30), min_size=0, max_size=40),
    n_chips=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_noise_stats_floor_equals_the_per_slot_floor(counts: list[int], n_chips: int, seed: int) -> None:
    """Totals (split anywhere and added) give exactly features.noise_floor over all the slots."""
    from reservoir.asic import NoiseStats
    from reservoir.features import noise_floor
    from reservoir.substrate import EventSlot

    rng = np.random.default_rng(seed)
    slots = [
        EventSlot(
            np.arange(c, dtype=np.int64),
            rng.integers(0, n_chips, c).astype(np.int16),
            np.zeros(c, np.int16),
            rng.random(c) < 0.8,
            np.zeros(n_chips),
            0,
            1,
        )
        for c in counts
    ]
    cut = len(slots) // 3
    total = NoiseStats.of(slots[:cut], n_chips) + NoiseStats.of(slots[cut:], n_chips)
    want, got = noise_floor(slots, n_chips), total.floor()
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12), k


def test_noise_floor_covers_every_slot_since_reset() -> None:
    """Not only the first 20,000 slots: a rate change after them shows in the floor."""

    class Step:
        n_chips = 1

        def __init__(self) -> None:
            self.calls = 0

        def run(self, schedule: SlotSchedule) -> list:  # type: ignore[type-arg]
            self.calls += 1
            rate = 10_000.0 if self.calls <= 2 else 90_000.0
            return PoissonSubstrate(rate_hz=rate, invalid_p=0.0, seed=self.calls).run(schedule)

    res = AsicReservoir(Step(), 1, n_sub=20)
    res.reset()
    res.run(np.zeros((2000, 1)))  # 4 chunks of 500 steps x 20 slots: 40,000 slots
    assert res.noise_stats().n_slots == 40_000
    # half the slots at 10 events, half at 90: mean 50 (the first 20,000 alone would say 10)
    assert res.noise_floor()["mean_count_per_slot"] == pytest.approx(50, rel=0.02)
    res.reset()
    assert res.noise_stats().n_slots == 0


def test_counts_are_scaled_to_the_nominal_slot_when_durations_vary() -> None:
    """Slots split at the setpoint's write time are uneven: the count feature is per nominal slot."""
    from reservoir.features import FEATURES
    from reservoir.substrate import EventSlot

    slot_ns = 1_000_000

    class Uneven:
        n_chips = 1

        def run(self, schedule: SlotSchedule) -> list[EventSlot]:
            out = []
            for k in range(schedule.n_slots):
                d = slot_ns // 2 if k % 2 == 0 else 3 * slot_ns // 2
                n = 10 if k % 2 == 0 else 30  # the same rate: 20 per nominal slot
                out.append(
                    EventSlot(
                        np.arange(n, dtype=np.int64) * (d // n),
                        np.zeros(n, np.int16),
                        np.arange(n, dtype=np.int16),
                        np.ones(n, bool),
                        np.zeros(1),
                        k * slot_ns,
                        d,
                    )
                )
            return out

    res = AsicReservoir(Uneven(), 1, n_sub=2, slot_ns=slot_ns)
    S = res.run(np.zeros((5, 1)))
    counts = S.reshape(5, 2, 1, len(FEATURES))[..., FEATURES.index("count")]
    np.testing.assert_allclose(counts, 20.0)
    # only the count is rescaled: the log-interval mean keeps its per-slot value
    lim = S.reshape(5, 2, 1, len(FEATURES))[..., FEATURES.index("log_iv_mean")]
    assert np.all(lim[:, 0] == lim[0, 0]) and np.all(lim[:, 1] == lim[0, 1])


def test_masks_positive_by_default_symmetric_on_request() -> None:
    """Same magnitudes per sub-slot under both designs; only the signs differ (reservoir/asic.py)."""
    u = np.array([[1.0]])
    pos = AsicReservoir(PoissonSubstrate(), 1, n_sub=6, seed=4).setpoints(u)
    sym = AsicReservoir(PoissonSubstrate(), 1, n_sub=6, seed=4, mask="symmetric").setpoints(u)
    mid = 487.5
    np.testing.assert_allclose(np.abs(pos - mid), np.abs(sym - mid))
    assert np.all(pos >= mid) and np.any(sym < mid)
    with pytest.raises(ValueError, match="mask"):
        AsicReservoir(PoissonSubstrate(), 1, mask="binary")


def _lag1_coefficient(mask: str, seed: int) -> float:
    """Count change per unit u(t-1), relative to the mean count, on a substrate whose rate lags the clock
    by 3 slots (a slow state, as a die temperature or a mean-power trace is): what a memory task reads."""
    sub = RateModelSubstrate(rate_hz=100_000, tau_ns=3_000_000, spread=0.0, seed=seed)
    res = AsicReservoir(sub, 1, n_sub=4, slot_ns=1_000_000, seed=seed, mask=mask, mask_scale="uniform")
    u = np.random.default_rng(50 + seed).uniform(-1, 1, 400)
    counts = res.run(u[:, None]).reshape(400, 4, len(FEATURES))[20:, :, 0].sum(axis=1)
    X = np.column_stack([np.ones(380), u[20:], u[19:-1]])
    coef = np.linalg.lstsq(X, counts, rcond=None)[0]
    return float(coef[2] / coef[0])


def test_positive_masks_keep_a_slow_state_input_dependent() -> None:
    """Over seeds, the echo of u(t-1) in the counts is larger under positive masks: with symmetric ones the
    slow state integrates sub-slot clocks of both signs, which cancel (docs/asic-results.md)."""
    pos = [_lag1_coefficient("positive", s) for s in range(8)]
    sym = [abs(_lag1_coefficient("symmetric", s)) for s in range(8)]
    assert all(p > 0 for p in pos), pos  # a higher past clock, a higher present rate
    assert np.mean(pos) > 2 * np.mean(sym), (pos, sym)  # measured 0.042 against 0.018


def test_full_mask_scale_spans_the_range_and_uniform_keeps_the_draw() -> None:
    """``full``: each sub-slot's magnitudes sum to d_in (1 input: the clock reaches both ends in every
    sub-slot); ``uniform``: the drawn magnitudes; signs and ratios are the same under both."""
    one = AsicReservoir(PoissonSubstrate(), 1, n_sub=5, seed=2).setpoints(np.array([[1.0], [-1.0]]))
    np.testing.assert_allclose(one, [575.0] * 5 + [400.0] * 5)
    full = AsicReservoir(PoissonSubstrate(), 3, n_sub=5, seed=2)._get_mask(3)
    uni = AsicReservoir(PoissonSubstrate(), 3, n_sub=5, seed=2, mask_scale="uniform")._get_mask(3)
    np.testing.assert_allclose(full.sum(axis=1), 3.0)
    np.testing.assert_allclose(full / full.sum(axis=1, keepdims=True), uni / uni.sum(axis=1, keepdims=True))
    assert np.all(uni <= 1.0) and uni.sum(axis=1).max() < 3.0
    with pytest.raises(ValueError, match="mask_scale"):
        AsicReservoir(PoissonSubstrate(), 1, mask_scale="half")


def test_the_matched_null_has_the_asic_runs_chips_and_averages_its_draws() -> None:
    """Same chips (so the same state size), the measured invalid fraction, and K realisations per seed whose
    mean is the seed's null value; draw 0 is the single-draw null."""
    sub = {"substrate": lambda seed: RateModelSubstrate(n_chips=2, rate_hz=30_000, seed=seed)}
    task = narma10_task(n_train=200, n_test=100)
    s = run_bench(task, "asic", size=12, seeds=2, options=sub, with_null=True, null_draws=3).summary
    null = s["null"]
    assert null["n_chips"] == 2 and null["state_dim"] == s["state_dim"] == 12
    assert null["draws"] == 3 and np.asarray(null["per_draw"]).shape == (3, 2)
    assert null["per_seed"] == pytest.approx(np.mean(null["per_draw"], axis=0))
    assert len({tuple(d) for d in null["per_draw"]}) == 3  # three different realisations
    assert 0.0 <= null["invalid_p"] < 0.2
    one = run_bench(task, "asic", size=12, seeds=2, options=sub, with_null=True, null_draws=1).summary
    assert one["null"]["per_seed"] == null["per_draw"][0]
    with pytest.raises(ValueError, match="null draws"):
        run_bench(task, "asic", size=12, seeds=1, options=sub, with_null=True, null_draws=0)
