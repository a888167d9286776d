"""Delay line and the Poisson null: the null must score at chance on every task, or the pipeline leaks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reservoir.baselines import DelayLine
from reservoir.bench import run_bench
from reservoir.tasks import narma10_task

SMALL = {"n_train": 600, "n_test": 400}


def test_delay_line_is_a_shift_register() -> None:
    u = np.arange(1.0, 11.0)[:, None]
    dl = DelayLine(1, k=3)
    S = dl.run(u[:4])
    np.testing.assert_array_equal(S, [[1, 0, 0], [2, 1, 0], [3, 2, 1], [4, 3, 2]])
    np.testing.assert_array_equal(dl.run(u[4:6]), [[5, 4, 3], [6, 5, 4]])  # continues
    dl.reset()
    np.testing.assert_array_equal(dl.run(u[:1]), [[1, 0, 0]])
    X = np.ones((2, 5))
    np.testing.assert_array_equal(dl.fit_transform(X), X)


def test_delay_line_narma10_floor() -> None:
    s = run_bench(narma10_task(n_train=2000, n_test=1000), "delay-line", size=20).summary
    # the linear memory floor: NRMSE near 0.4 (docs/methods.md), far from both perfect and chance
    assert 0.3 < s["nrmse"] < 0.6


@pytest.mark.parametrize("task", ["narma10", "mackey-glass"])
def test_poisson_null_at_chance_regression(task: str) -> None:
    s = run_bench(task, "poisson-null", size=30, seeds=2, task_options=SMALL).summary
    assert 0.9 < s["value"] < 1.3, s
    assert s["noise_floor"]["mean_count_per_slot"] > 0


def test_poisson_null_at_chance_memory() -> None:
    s = run_bench(
        "memory-capacity", "poisson-null", size=30, seeds=1, task_options={"n_train": 600, "n_test": 2000}
    ).summary
    # 50 delays, each r^2 ~ 1 / n_test by chance: chance capacity ~ 50 / 2000 = 0.025; 0.75 would be a leak
    assert s["value"] < 0.75, s


def test_poisson_null_at_chance_forecast(tmp_path: Path) -> None:
    np.save(
        tmp_path / "s.npy", np.sin(np.arange(800) * 0.2) + 0.1 * np.random.default_rng(0).standard_normal(800)
    )
    s = run_bench("forecast", "poisson-null", size=30, task_options={"series": tmp_path / "s.npy"}).summary
    assert 0.9 < s["value"] < 1.3, s


def test_poisson_null_at_chance_classification(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 50)
    X = rng.standard_normal((200, 8)) + 3.0 * rng.standard_normal((4, 8))[y]  # separable for a linear readout
    np.savez(tmp_path / "d.npz", X=X, y=y)
    null = run_bench(
        "classify", "poisson-null", size=12, seeds=1, task_options={"data": tmp_path / "d.npz"}
    ).summary
    lin = run_bench("classify", "delay-line", seeds=1, task_options={"data": tmp_path / "d.npz"}).summary
    assert lin["value"] > 0.9
    assert null["value"] < 0.25 + 0.2, null  # chance 1/4
    assert null["n_classes"] == 4
