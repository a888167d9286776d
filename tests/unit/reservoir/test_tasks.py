"""Task generators against hand-computed steps, fixed splits, scaling from training data, user-file errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservoir.tasks import (
    MinMaxScaler,
    TaskDataError,
    classify_task,
    forecast_task,
    load_series,
    make_task,
    memory_capacity,
    nmse,
    nrmse,
)
from reservoir.tasks.generators import MG_TAU, delayed_targets, mackey_glass, narma10, narma10_series


def test_narma10_first_steps_by_hand() -> None:
    u = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.25, 0.35, 0.45])
    y = narma10(u)
    assert np.all(y[:10] == 0.0)
    y10 = 1.5 * u[0] * u[9] + 0.1  # all earlier y are 0
    assert y[10] == pytest.approx(y10)
    y11 = 0.3 * y10 + 0.05 * y10 * (y10 + 0) + 1.5 * u[1] * u[10] + 0.1
    assert y[11] == pytest.approx(y11)
    y12 = 0.3 * y11 + 0.05 * y11 * (y11 + y10) + 1.5 * u[2] * u[11] + 0.1
    assert y[12] == pytest.approx(y12)


def test_narma10_series_is_aligned_and_seeded() -> None:
    u, y = narma10_series(300, seed=7)
    u2, y2 = narma10_series(300, seed=7)
    np.testing.assert_array_equal(u, u2)
    np.testing.assert_array_equal(y, y2)
    assert u.min() >= 0.0 and u.max() <= 0.5
    np.testing.assert_allclose(y, narma10(u)[1:])  # y[t] is the output after u[t]


def test_delayed_targets() -> None:
    u = np.arange(1.0, 7.0)
    d = delayed_targets(u, 2)
    np.testing.assert_array_equal(d[:, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(d[:, 1], [0, 0, 1, 2, 3, 4])


def test_mackey_glass_matches_closed_form_before_the_delay_bites() -> None:
    # for t < tau the delayed term sees the constant history x0: dx/dt = c - 0.1 x, solved exactly
    x0 = 1.2
    c = 0.2 * x0 / (1 + x0**10)
    x = mackey_glass(int(MG_TAU) - 1, sample_every=1.0, transient=0.0, x0=x0)
    t = np.arange(x.size)
    np.testing.assert_allclose(x, 10 * c + (x0 - 10 * c) * np.exp(-0.1 * t), rtol=1e-9)


def test_mackey_glass_is_chaotic_band() -> None:
    x = mackey_glass(2000)
    assert 0.2 < x.min() < 0.6 and 1.1 < x.max() < 1.5  # the familiar tau=17 attractor range
    assert np.std(x) > 0.15


def test_splits_are_fixed_and_documented() -> None:
    a, b = make_task("narma10"), make_task("narma10")
    np.testing.assert_array_equal(a.u, b.u)  # type: ignore[union-attr]
    assert (a.washout, a.n_train, a.n_test) == (200, 4000, 1000)  # type: ignore[union-attr]
    assert a.u.shape[0] == 5200  # type: ignore[union-attr]
    mc = make_task("memory-capacity")
    assert mc.y.shape[1] == 50 and mc.n_test == 4000  # type: ignore[union-attr]
    mg = make_task("mackey-glass")
    assert mg.free_run == 84  # type: ignore[union-attr]
    np.testing.assert_array_equal(mg.u[1:, 0], mg.y[:-1, 0])  # type: ignore[union-attr]
    d1, d2 = make_task("digits"), make_task("digits")
    assert len(d1.y_train) == 1347 and len(d1.y_test) == 450  # type: ignore[union-attr]
    np.testing.assert_array_equal(d1.y_test, d2.y_test)  # type: ignore[union-attr]


def test_scaler_uses_training_rows_only() -> None:
    tk = make_task("narma10", n_train=500, n_test=200)
    sc = MinMaxScaler.fit(tk.u[tk.train])  # type: ignore[union-attr]
    z = sc.transform(tk.u[tk.train])  # type: ignore[union-attr]
    assert z.min() == pytest.approx(-1.0) and z.max() == pytest.approx(1.0)
    const = MinMaxScaler.fit(np.ones((5, 1)))
    assert const.transform(np.array([[1.0], [3.0]]))[0, 0] == 0.0


def test_metrics() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert nmse(y, y) == 0.0
    assert nmse(np.full(4, y.mean()), y) == pytest.approx(1.0)
    assert nrmse(y + 1, y) == pytest.approx(np.sqrt(1 / np.var(y)))
    mc, r2 = memory_capacity(np.column_stack([y, -y, np.ones(4)]), np.column_stack([y, y, y]))
    assert mc == pytest.approx(2.0) and r2[2] == 0.0


@given(st.integers(1, 5))
def test_forecast_alignment(h: int) -> None:
    x = np.sin(np.arange(200) * 0.3)
    tk = forecast_task(x, horizon=h)
    np.testing.assert_array_equal(tk.y[:, 0], x[h : h + len(tk.y)])
    np.testing.assert_array_equal(tk.u[:, 0], x[: len(tk.u)])
    assert tk.washout + tk.n_train + tk.n_test == len(tk.u) == 200 - h


def test_load_series_formats_and_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(100.0)[:, None])
    assert load_series(tmp_path / "a.npy").shape == (100,)
    (tmp_path / "b.csv").write_text("value\n" + "\n".join(str(i) for i in range(60)))
    assert load_series(tmp_path / "b.csv")[-1] == 59.0
    np.save(tmp_path / "two.npy", np.zeros((10, 2)))
    with pytest.raises(TaskDataError, match=r"one-column.*\(10, 2\)"):
        load_series(tmp_path / "two.npy")
    (tmp_path / "c.csv").write_text("1,2\n3,4\n")
    with pytest.raises(TaskDataError, match="one column"):
        load_series(tmp_path / "c.csv")
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan, 2.0]))
    with pytest.raises(TaskDataError, match=r"non-finite.*index 1"):
        load_series(tmp_path / "nan.npy")
    with pytest.raises(TaskDataError, match="not found"):
        load_series(tmp_path / "missing.npy")
    with pytest.raises(TaskDataError, match="too short"):
        forecast_task(tmp_path / "a.npy", horizon=60)
    with pytest.raises(TaskDataError, match="needs --series"):
        make_task("forecast")


def test_classify_file_and_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3, 2)), np.repeat(["a", "b"], 20)
    np.savez(tmp_path / "ok.npz", X=X, y=y, n_train=30)
    tk = classify_task(tmp_path / "ok.npz")
    assert tk.X_train.shape == (30, 6) and len(tk.y_test) == 10 and tk.n_classes == 2
    np.savez(tmp_path / "frac.npz", X=X, y=y)
    assert len(classify_task(tmp_path / "frac.npz").y_train) == 30  # default fraction 0.75
    np.savez(tmp_path / "nokey.npz", X=X)
    with pytest.raises(TaskDataError, match=r"missing array\(s\) \['y'\]"):
        classify_task(tmp_path / "nokey.npz")
    np.savez(tmp_path / "len.npz", X=X, y=y[:5])
    with pytest.raises(TaskDataError, match="y must have shape"):
        classify_task(tmp_path / "len.npz")
    Xn = X.copy()
    Xn[3, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=Xn, y=y)
    with pytest.raises(TaskDataError, match="non-finite"):
        classify_task(tmp_path / "nan.npz")
    np.savez(tmp_path / "ntr.npz", X=X, y=y, n_train=40)
    with pytest.raises(TaskDataError, match="n_train=40"):
        classify_task(tmp_path / "ntr.npz")
    with pytest.raises(ValueError, match="unknown task"):
        make_task("narma20")
