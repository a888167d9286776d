"""Echo-state network: construction, statefulness, and NARMA10 / memory capacity against the anchors."""

from __future__ import annotations

import numpy as np
import pytest

from reservoir.bench import run_bench
from reservoir.esn import ESN, ESNParams
from reservoir.registry import ReservoirSpec, make_reservoir

#: reservoirpy-measured NMSE anchors on NARMA10 (4000 train / 1000 test), docs/methods.md.
NARMA_ANCHORS = {100: 0.103, 200: 0.050, 400: 0.030}


def test_spectral_radius_and_shapes() -> None:
    esn = ESN(2, ESNParams(size=50, spectral_radius=0.8), seed=3)
    S = esn.run(np.random.default_rng(0).uniform(-1, 1, (20, 2)))
    assert S.shape == (20, 50)
    W = esn._W if isinstance(esn._W, np.ndarray) else esn._W.toarray()
    assert np.max(np.abs(np.linalg.eigvals(W))) == pytest.approx(0.8, rel=1e-9)
    assert np.all(np.abs(S) < 1.0)


@pytest.mark.parametrize("size", [30, 300])  # dense-stored W (N <= DENSE_MAX) and CSR-stored W
@pytest.mark.parametrize("leak", [1.0, 0.6])
def test_csr_kernel_equals_plain_recurrence(size: int, leak: float) -> None:
    u = np.random.default_rng(4).uniform(-1, 1, (50, 2))
    esn = ESN(2, ESNParams(size=size, leak=leak), seed=1)
    S = np.vstack([esn.run(u[:20]), esn.run(u[20:])])  # continuing from the state of the first call
    W = esn._W if isinstance(esn._W, np.ndarray) else esn._W.toarray()
    x, ref = np.zeros(size), []
    for t in range(50):
        x = (1.0 - leak) * x + leak * np.tanh(W @ x + esn._Win @ u[t] + esn._b)
        ref.append(x)
    np.testing.assert_allclose(S, np.array(ref), atol=1e-12)


def test_run_continues_and_reset_repeats() -> None:
    u = np.random.default_rng(1).uniform(-1, 1, (100, 1))
    esn = ESN(1, ESNParams(size=30, leak=0.6), seed=0)
    whole = esn.run(u)
    esn.reset()
    parts = np.vstack([esn.run(u[:37]), esn.run(u[37:])])
    np.testing.assert_allclose(parts, whole, atol=1e-12)
    other = make_reservoir("esn", ReservoirSpec(1, seed=1, size=30, options={"leak": 0.6}))
    assert not np.allclose(other.run(u), whole)  # type: ignore[attr-defined]


def test_samples_are_independent_of_batch() -> None:
    X = np.random.default_rng(2).uniform(0, 1, (10, 64))
    esn = ESN(64, ESNParams(size=20), seed=0)
    F = esn.fit_transform(X)
    assert F.shape == (10, 8 * 20)
    np.testing.assert_allclose(esn.transform(X[3:4]), F[3:4], atol=1e-12)


def test_esn_narma10_default_size_fast() -> None:
    """Full default splits at N=100 with 2 seeds: well inside the loose bound (anchor 0.103)."""
    s = run_bench("narma10", "esn", seeds=2).summary
    assert s["state_dim"] == 100 and s["n_train"] == 4000 and s["n_test"] == 1000
    assert s["value"] < 0.2


def test_esn_memory_capacity_fast() -> None:
    s = run_bench("memory-capacity", "esn", seeds=1, task_options={"n_train": 2000, "n_test": 2000}).summary
    assert 12.0 < s["value"] < 50.0  # anchor 18.8 at N=100 (MC <= N; <= kmax = 50 here)


@pytest.mark.slow
@pytest.mark.parametrize("size", [100, 200, 400])
def test_esn_narma10_anchor(size: int) -> None:
    s = run_bench("narma10", "esn", size=size, seeds=5).summary
    assert s["value"] <= 1.1 * NARMA_ANCHORS[size]


@pytest.mark.slow
def test_esn_memory_capacity_anchor() -> None:
    s = run_bench("memory-capacity", "esn", size=100, seeds=5, options={"spectral_radius": 1.0}).summary
    assert s["value"] >= 0.9 * 18.8


def test_sample_features_that_would_not_fit_in_memory_are_a_clear_error() -> None:
    """MNIST's 98 steps x 1000 units for 60,000 samples: ~94 GB while stacked, refused before computing."""
    from reservoir.esn import check_feature_memory

    check_feature_memory(100, 98, 1000, total=24 * 2**30)  # 0.16 GB: fine
    with pytest.raises(ValueError, match=r"esn features for 60000 samples: 98 steps x 1000 units .* --size"):
        check_feature_memory(60_000, 98, 1000, total=24 * 2**30)
    check_feature_memory(60_000, 1, 1000, total=24 * 2**30)  # pooled to the mean state: 0.96 GB


def test_pooled_sample_features_are_block_means_of_the_step_states() -> None:
    """pool K averages the per-step states over K near-equal runs of steps; 0 keeps every step (default)."""
    from reservoir.esn import ESN, ESNParams, make_esn
    from reservoir.spec import ReservoirSpec

    X = np.random.default_rng(3).uniform(0, 1, (7, 44))  # 6 steps of 8 (the last one padded)
    N = 20
    every = ESN(8, ESNParams(size=N), seed=1).fit_transform(X)
    assert every.shape == (7, 6 * N)
    steps = every.reshape(7, 6, N)
    mean = ESN(8, ESNParams(size=N, pool=1), seed=1).fit_transform(X)
    np.testing.assert_allclose(mean, steps.mean(axis=1), rtol=1e-12, atol=1e-15)
    four = ESN(8, ESNParams(size=N, pool=4), seed=1).transform(X)  # runs of 2, 2, 1, 1 steps
    want = np.hstack([steps[:, r].mean(axis=1) for r in ([0, 1], [2, 3], [4], [5])])
    np.testing.assert_allclose(four, want, rtol=1e-12, atol=1e-15)
    many = ESN(8, ESNParams(size=N, pool=50), seed=1).transform(X)  # more runs than steps: one per step
    np.testing.assert_array_equal(many, every)
    spec = ReservoirSpec(n_inputs=8, seed=1, size=N, kind="samples", options={"pool": "1"})
    np.testing.assert_array_equal(make_esn(spec).fit_transform(X), mean)
    for bad in ("-1", "1.5", "x"):
        with pytest.raises(ValueError, match=r"pool|numbers"):
            make_esn(ReservoirSpec(n_inputs=8, seed=1, size=N, kind="samples", options={"pool": bad}))
