"""RidgeReadout: equal to scikit-learn's Ridge, streaming = batch, statistics add up, CV = brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge, RidgeClassifier
from sklearn.model_selection import KFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from reservoir.readout import RidgeClassifierReadout, RidgeReadout, RidgeStats, gcv_errors, kfold_errors


def _data(
    n: int = 300, d: int = 12, k: int = 1, seed: int = 0, offset: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.1, 3.0, d) + offset
    W = rng.standard_normal((d, k))
    y = X @ W + 0.3 * rng.standard_normal((n, k)) + 2.0
    return X, (y[:, 0] if k == 1 else y)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("alpha", [1e-6, 0.1, 10.0])
def test_matches_sklearn_ridge(k: int, alpha: float) -> None:
    X, y = _data(k=k)
    ours = RidgeReadout(alpha=alpha).fit(X, y)
    ref = Ridge(alpha=alpha, solver="cholesky").fit(X, y)
    Xt, _ = _data(n=50, k=k, seed=1)
    np.testing.assert_allclose(ours.predict(Xt), ref.predict(Xt), atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-6)
    assert ours.predict(Xt).shape == ref.predict(Xt).shape


def test_matches_sklearn_with_weights_and_no_intercept() -> None:
    X, y = _data(k=2)
    w = np.random.default_rng(3).uniform(0.2, 2.0, len(X))
    ours = RidgeReadout(alpha=0.5).fit(X, y, sample_weight=w)
    ref = Ridge(alpha=0.5).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), atol=1e-6)
    ours0 = RidgeReadout(alpha=0.5, fit_intercept=False).fit(X, y)
    ref0 = Ridge(alpha=0.5, fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(ours0.predict(X), ref0.predict(X), atol=1e-6)


def test_intercept_is_not_penalised() -> None:
    X, y = _data()
    big = RidgeReadout(alpha=1e12).fit(X, y)
    # with all weights shrunk to ~0 the prediction is the target mean (an unpenalised intercept)
    np.testing.assert_allclose(big.predict(X[:5]), np.full(5, y.mean()), atol=1e-3)


@pytest.mark.parametrize("alpha", [0.1, "gcv", "cv"])
def test_streaming_equals_batch(alpha: float | str) -> None:
    X, y = _data(n=400, k=2)
    batch = RidgeReadout(alpha=alpha).fit(X, y)
    stream = RidgeReadout(alpha=alpha)
    stream.partial_fit(X, y)  # one chunk: identical folds
    np.testing.assert_allclose(stream.predict(X), batch.predict(X), atol=1e-9)
    chunks = RidgeReadout(alpha=0.1 if alpha == "cv" else alpha)
    for a in range(0, 400, 37):
        chunks.partial_fit(X[a : a + 37], y[a : a + 37])
    ref = RidgeReadout(alpha=0.1 if alpha == "cv" else alpha).fit(X, y)
    np.testing.assert_allclose(chunks.predict(X), ref.predict(X), atol=1e-8)
    assert chunks.stats_.rows == 400


@given(st.integers(1, 299), st.integers(0, 5))
def test_summed_halves_equal_whole(split: int, seed: int) -> None:
    X, y = _data(n=300, k=2, seed=seed, offset=100.0)
    whole = RidgeStats.from_arrays(X, y)
    parts = RidgeStats.from_arrays(X[:split], y[:split]) + RidgeStats.from_arrays(X[split:], y[split:])
    np.testing.assert_allclose(parts.cxx, whole.cxx, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(parts.cxy, whole.cxy, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(parts.x_mean, whole.x_mean, rtol=1e-12)
    np.testing.assert_allclose(parts.xtx(), X.T @ X, rtol=1e-9)
    np.testing.assert_allclose(parts.xty(), X.T @ y, rtol=1e-9)
    assert parts.rows == 300 and parts.n == 300.0
    back = whole - RidgeStats.from_arrays(X[split:], y[split:])
    np.testing.assert_allclose(back.cxx, RidgeStats.from_arrays(X[:split], y[:split]).cxx, atol=1e-6)


def test_stats_from_two_hosts_fit_like_one() -> None:
    X, y = _data(n=500)
    a = RidgeStats.from_bytes(RidgeStats.from_arrays(X[:200], y[:200]).to_bytes())
    b = RidgeStats.from_dict(RidgeStats.from_arrays(X[200:], y[200:]).to_dict())
    ours = RidgeReadout(alpha=0.3).fit_stats(a + b)
    ref = Ridge(alpha=0.3).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), atol=1e-6)


def test_stats_from_dict_names_missing_key() -> None:
    d = RidgeStats.from_arrays(*_data(n=20)).to_dict()
    del d["cxy"]
    with pytest.raises(ValueError, match="cxy"):
        RidgeStats.from_dict(d)


def _brute_kfold(X: np.ndarray, y: np.ndarray, alphas: list[float], k: int) -> np.ndarray:
    errs = []
    for a in alphas:
        sse = 0.0
        for tr, te in KFold(k, shuffle=False).split(X):
            m = Ridge(alpha=a).fit(X[tr], y[tr])
            sse += float(np.sum((m.predict(X[te]) - y[te]) ** 2))
        errs.append(sse / (len(X) * (y.shape[1] if y.ndim == 2 else 1)))
    return np.array(errs)


@pytest.mark.parametrize("k", [1, 2])
def test_kfold_cv_equals_brute_force(k: int) -> None:
    X, y = _data(n=240, d=30, k=k, seed=4)
    X[:, 20:] = X[:, :10] + 0.01 * np.random.default_rng(0).standard_normal(
        (240, 10)
    )  # collinear: alpha matters
    alphas = [1e-4, 1e-2, 0.1, 1.0, 10.0, 100.0]
    ours = RidgeReadout(alpha="cv", alphas=alphas, n_folds=5).fit(X, y)
    brute = _brute_kfold(X, y, alphas, 5)
    np.testing.assert_allclose(ours.cv_errors_, brute, rtol=1e-8)
    assert ours.alpha_ == alphas[int(np.argmin(brute))]


@pytest.mark.parametrize("d", [2, 7])
def test_kfold_cv_small_dims_equal_brute_force(d: int) -> None:
    """d < 3 takes the eigendecomposition path, d >= 3 the tridiagonal one: both equal brute force."""
    X, y = _data(n=90, d=d, k=2, seed=d)
    alphas = [1e-3, 0.3, 30.0]
    ours = RidgeReadout(alpha="cv", alphas=alphas, n_folds=3).fit(X, y)
    np.testing.assert_allclose(ours.cv_errors_, _brute_kfold(X, y, alphas, 3), rtol=1e-8)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 20), st.integers(3, 40), st.integers(1, 3))
def test_kfold_tridiagonal_equals_eigendecomposition(seed: int, d: int, k: int) -> None:
    X, y = _data(n=4 * d + 20, d=d, k=k, seed=seed)
    folds = [RidgeStats.from_arrays(X[a::4], y[a::4]) for a in range(4)]
    alphas = [1e-6, 1e-2, 1.0, 100.0]
    np.testing.assert_allclose(kfold_errors(folds, alphas), kfold_errors(folds, alphas, "eig"), rtol=1e-7)


def test_kfold_singular_fold_falls_back_to_eigendecomposition() -> None:
    """alpha = 0 on duplicated columns: T is singular, so the fold uses the clipped eigendecomposition."""
    X, y = _data(n=120, d=6, seed=2)
    X = np.hstack([X, X[:, :3]])
    folds = [RidgeStats.from_arrays(X[a : a + 40], y[a : a + 40]) for a in (0, 40, 80)]
    errs = kfold_errors(folds, [0.0, 1e-3, 1.0])
    assert np.all(np.isfinite(errs))
    np.testing.assert_allclose(errs[1:], kfold_errors(folds, [1e-3, 1.0], "eig"), rtol=1e-7)
    with pytest.raises(ValueError, match="method"):
        kfold_errors(folds, [1.0], "cholesky")


def test_gcv_equals_brute_force() -> None:
    X, y = _data(n=150, d=20, seed=5)
    alphas = [1e-3, 0.1, 1.0, 10.0, 100.0]
    Xc = X - X.mean(axis=0)
    n = len(X)
    brute = []
    for a in alphas:
        H = Xc @ np.linalg.solve(Xc.T @ Xc + a * np.eye(X.shape[1]), Xc.T) + 1.0 / n
        rss = float(np.sum((Ridge(alpha=a).fit(X, y).predict(X) - y) ** 2))
        brute.append(rss / n / (1 - np.trace(H) / n) ** 2)
    np.testing.assert_allclose(gcv_errors(RidgeStats.from_arrays(X, y), alphas), brute, rtol=1e-8)
    assert RidgeReadout(alpha="gcv", alphas=alphas).fit(X, y).alpha_ == alphas[int(np.argmin(brute))]


def test_classifier_matches_sklearn_ridge_classifier() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 8))
    y = np.argmax(X[:, :4] + 0.5 * rng.standard_normal((300, 4)), axis=1)
    ours = RidgeClassifierReadout(alpha=1.0).fit(X, y)
    ref = RidgeClassifier(alpha=1.0).fit(X, y)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    np.testing.assert_allclose(ours.decision_function(X), ref.decision_function(X), atol=1e-6)
    yb = np.where(y > 1, "b", "a")
    np.testing.assert_array_equal(
        RidgeClassifierReadout(alpha=1.0).fit(X, yb).predict(X),
        RidgeClassifier(alpha=1.0).fit(X, yb).predict(X),
    )


def test_bad_params_raise() -> None:
    X, y = _data(n=20)
    with pytest.raises(ValueError, match="alpha"):
        RidgeReadout(alpha="loo").fit(X, y)
    with pytest.raises(ValueError, match="n_folds"):
        RidgeReadout(alpha="cv", n_folds=1).fit(X, y)


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [RidgeReadout(), RidgeReadout(alpha="gcv"), RidgeReadout(alpha="cv"), RidgeClassifierReadout()],
    expected_failed_checks=lambda est: (
        {
            "check_sample_weight_equivalence_on_dense_data": (
                "GCV picks alpha=1e-10 on this check's tiny data: the fits agree only to ~1e-5 (conditioning)"
            )
        }
        if getattr(est, "alpha", None) == "gcv"
        else {}
    ),
)
def test_sklearn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]
