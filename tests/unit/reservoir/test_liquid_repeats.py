"""benchmarks/liquid_repeats.py: training passes are fresh draws of one liquid; the script end to end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import liquid_repeats

from reservoir.spiking.reservoir import LiquidConfig, LiquidReservoir
from tests.unit.reservoir.test_spiking_idx import _write_mnist

SMALL = {"presentation_ms": "60", "batch_size": "16", "bf_samples": "0", "n_init": "3", "init_ms": "5"}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def test_each_pass_is_a_fresh_draw_of_the_same_liquid() -> None:
    X = np.random.default_rng(2).uniform(0, 1, (12, 20))
    config = LiquidConfig.from_options("nalsm", 64, SMALL)
    runs, Fte = liquid_repeats.presentations(LiquidReservoir(20, config, 4), X, X[:5], 3)
    assert len(runs) == 3 and all(r.shape == (12, 64) for r in runs) and Fte.shape == (5, 64)
    plain = LiquidReservoir(20, config, 4)
    np.testing.assert_array_equal(runs[0], plain.fit_transform(X))  # pass 1 = what the bench computes
    assert not np.array_equal(runs[1], runs[2]) and not np.array_equal(runs[0], runs[1])
    assert runs[0].sum() > 0


def test_the_script_prints_one_row_per_kind_and_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_mnist(tmp_path, 40, 20, gz=False)
    sets = [a for k, v in SMALL.items() for a in ("--set", f"{k}={v}")]
    argv = ["liquid_repeats.py", "--mnist", str(tmp_path), "--kinds", "lsm,nalsm", "--size", "64"]
    monkeypatch.setattr(sys, "argv", [*argv, "--n-train", "30", "--n-test", "10", "--passes", "2,1", *sets])
    liquid_repeats.main()
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["kind"], r["passes"]) for r in rows] == [("lsm", 1), ("lsm", 2), ("nalsm", 1), ("nalsm", 2)]
    assert all(0.0 <= r["ridge"] <= 1.0 and 0.0 <= r["softmax"] <= 1.0 for r in rows)
    assert all(r["n_train"] == 30 and r["n_test"] == 10 for r in rows)
