"""Statistics core: closed-form statistics against scipy, null intervals against docs/methods.md,
corrections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from reservoir.timing import benjamini_hochberg, core, holm, nulls, synth
from reservoir.timing.verdict import TooFewEvents, compute_stream


def test_ks_matches_scipy_with_fitted_scale() -> None:
    x = np.random.default_rng(1).exponential(2.0, 500)
    ref = sps.kstest(x, "expon", args=(0, x.mean())).statistic
    assert core.ks_exp(np.sort(x)) == pytest.approx(ref, rel=1e-9)


def test_ad_matches_scipy_anderson_expon() -> None:
    x = np.random.default_rng(2).exponential(0.3, 400)
    ref = sps.anderson(x, "expon", method="interpolate").statistic
    assert core.ad_exp(np.sort(x)) == pytest.approx(ref, rel=1e-6)


def test_ks_vectorised_rows_equal_single_rows() -> None:
    x = np.sort(np.random.default_rng(3).exponential(1.0, (4, 50)), axis=1)
    assert np.allclose(core.ks_exp(x), [core.ks_exp(r) for r in x])
    assert np.allclose(core.ad_exp(x), [core.ad_exp(r) for r in x])


@pytest.mark.parametrize(("n_events", "lo", "hi"), [(10, 0.54, 1.48), (100, 0.83, 1.20), (1000, 0.94, 1.06)])
def test_cv_null_interval_matches_science_md(n_events: int, lo: float, hi: float) -> None:
    a, b = nulls.cv_null95(n_events)
    assert a == pytest.approx(lo, abs=0.03)
    assert b == pytest.approx(hi, abs=0.03)


def test_lilliefors_pvalue_agrees_with_scipy_goodness_of_fit() -> None:
    x = np.random.default_rng(4).exponential(1.0, 60) + 0.05  # mildly shifted: p not tiny, not ~1
    d = float(core.ks_exp(np.sort(x)))
    ours = nulls.ks_pvalue(d, len(x))
    ref = sps.goodness_of_fit(
        sps.expon, x, known_params={"loc": 0}, statistic="ks", n_mc_samples=999, rng=np.random.default_rng(5)
    ).pvalue
    assert ours == pytest.approx(ref, abs=0.05)


def test_ljung_box_formula_and_detects_ar1() -> None:
    rng = np.random.default_rng(6)
    x = rng.exponential(1.0, 2000)
    q, p, r = core.ljung_box(x, 5)
    n = len(x)
    manual = n * (n + 2) * sum(r[k - 1] ** 2 / (n - k) for k in range(1, 6))
    assert q == pytest.approx(manual)
    assert p > 1e-3
    y = np.empty(2000)
    y[0] = 0.0
    e = rng.normal(size=2000)
    for i in range(1, 2000):
        y[i] = 0.4 * y[i - 1] + e[i]
    assert core.ljung_box(np.exp(y), 5)[1] < 1e-10


def test_window_counts_by_hand() -> None:
    t = np.array([0, 1, 2, 5, 11, 12, 25], dtype=np.int64) * 100_000_000  # 0.1 s units
    c = core.window_counts([t], 0.5)  # 2.5 s / 0.5 s -> 5 whole windows; the opening event not counted
    assert c.tolist() == [2, 1, 2, 0, 0]
    # two segments: windows do not cross the boundary
    c2 = core.window_counts([t[:4], t[4:]], 0.2)
    assert c2.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]


def test_intervals_across_segments_are_dropped() -> None:
    segs = [np.array([0, 10, 30], dtype=np.int64), np.array([1000, 1005], dtype=np.int64)]
    assert core.intervals_ns(segs).tolist() == [10, 20, 5]
    assert core.duration_s(segs) == pytest.approx(35e-9)


def test_fano_null_band_contains_poisson_fano() -> None:
    t = synth.poisson(20000, 5.0, np.random.default_rng(8))
    c = core.window_counts([t], 2.0)
    lo, hi = core.fano_null95(len(c))
    assert lo < core.fano(c) < hi


def test_holm_and_bh_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_corrections_properties(p: list[float]) -> None:
    h, b = holm(p), benjamini_hochberg(p)
    for raw, hh, bb in zip(p, h, b):
        assert raw <= bb + 1e-12 <= hh + 2e-12
        assert hh <= 1.0
    order = np.argsort(p, kind="stable")
    assert all(np.diff(np.asarray(h)[order]) >= -1e-12)  # monotone in the raw p


def test_too_few_events_says_how_many() -> None:
    with pytest.raises(TooFewEvents, match="at least 30"):
        compute_stream(np.arange(10, dtype=np.int64) * 1000)


def test_fast_path_without_mc_gives_nan_mc_pvalues() -> None:
    s = compute_stream(synth.poisson(3000, 5.0, np.random.default_rng(9)), mc=False)
    assert np.isnan(s.pvalues["ks"]) and np.isnan(s.pvalues["cv"])
    assert s.fano and s.cv == pytest.approx(1.0, abs=0.1)
    assert not s.fano_shuffle95


@given(
    st.lists(st.integers(min_value=0, max_value=10**10), min_size=2, max_size=200),
    st.floats(min_value=1e-3, max_value=5.0),
)
def test_window_counts_count_every_event_in_whole_windows(raw: list[int], window_s: float) -> None:
    t = np.sort(np.asarray(raw, dtype=np.int64))
    c = core.window_counts([t], window_s)
    w = window_s * core.NS
    k = int((int(t[-1]) - int(t[0])) // w)
    assert len(c) == k
    offs = t[1:] - t[0]
    assert int(c.sum()) == int(np.count_nonzero(offs < k * w))


def test_unsorted_timestamps_are_refused() -> None:
    t = synth.poisson(100, 5.0, np.random.default_rng(10))
    with pytest.raises(ValueError, match="not sorted"):
        compute_stream(t[::-1].copy())
