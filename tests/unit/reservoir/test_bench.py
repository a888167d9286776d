"""Bench runner and ``asicrc bench``: result fields, confidence intervals, --json, --report, errors."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from daemon.cli import main
from reservoir.bench import ci95, run_bench
from reservoir.registry import REGISTRY, ReservoirSpec, UnsupportedTask, make_reservoir, register
from reservoir.substrate import RateModelSubstrate

FAST = ["--n-train", "400", "--n-test", "200"]


def test_ci95_is_a_t_interval() -> None:
    v = [0.1, 0.2, 0.4]
    lo, hi = ci95(v)  # type: ignore[misc]
    half = scipy.stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / np.sqrt(3)
    assert (lo, hi) == pytest.approx((np.mean(v) - half, np.mean(v) + half))
    assert ci95([0.3]) is None


def test_run_bench_summary_fields() -> None:
    r = run_bench("narma10", "esn", size=40, seeds=[3, 4], task_options={"n_train": 500, "n_test": 200})
    s = r.summary
    assert s["seeds"] == [3, 4] and len(s["per_seed"]) == 2
    assert s["value"] == pytest.approx(np.mean(s["per_seed"]))
    assert s["ci95"][0] <= s["value"] <= s["ci95"][1]
    assert (s["n_train"], s["n_test"], s["state_dim"], s["metric"]) == (500, 200, 40, "nmse")
    assert r.y_pred.shape == r.y_test.shape == (200,)
    again = run_bench("narma10", "esn", size=40, seeds=[3, 4], task_options={"n_train": 500, "n_test": 200})
    assert again.summary["per_seed"] == s["per_seed"]  # deterministic


def test_mackey_glass_reports_free_run() -> None:
    s = run_bench("mackey-glass", "esn", size=50, task_options={"n_train": 1000, "n_test": 400}).summary
    assert s["value"] < 1e-3  # one step ahead of a smooth series
    assert np.isfinite(s["free_run_nrmse_84"]) and s["free_run_nrmse_84"] > 0.0


def test_unknown_and_unsupported() -> None:
    with pytest.raises(ValueError, match="unknown reservoir"):
        make_reservoir("hopfield", ReservoirSpec(1))
    register(
        "series-only", lambda spec: types.SimpleNamespace(state_dim=1, reset=lambda: None, run=lambda u: u)
    )
    try:
        with pytest.raises(UnsupportedTask, match="no classification"):
            run_bench("digits", "series-only")
    finally:
        del REGISTRY["series-only"]


def test_run_bench_reports_each_seeds_info_without_touching_the_registry() -> None:
    class WithInfo:
        def __init__(self, spec: ReservoirSpec) -> None:
            self.seed, self.state_dim = spec.seed, 3

        def reset(self) -> None:
            pass

        def run(self, u: np.ndarray) -> np.ndarray:
            return np.repeat(u[:, :1], 3, axis=1)

        def info(self) -> dict[str, int]:
            return {"seed": self.seed}

    register("with-info", WithInfo)
    try:
        factory = REGISTRY["with-info"]
        r = run_bench("narma10", "with-info", seeds=[5, 7], task_options={"n_train": 200, "n_test": 100})
        assert REGISTRY["with-info"] is factory
    finally:
        del REGISTRY["with-info"]
    assert r.extra["reservoir_info"] == [{"seed": 5}, {"seed": 7}]
    assert "reservoir_info" not in run_bench("narma10", "esn", size=10, task_options={"n_train": 200}).extra


def test_spiking_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install '\.\[neuro\]'"):
        make_reservoir("nalsm", ReservoirSpec(64, kind="samples"))


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "narma10", "--reservoir", "esn", "--size", "30", "--seeds", "2", "--json", *FAST])
    assert rc == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    obj = json.loads(out)
    for key in ("task", "reservoir", "metric", "value", "ci95", "seeds", "n_train", "n_test", "state_dim"):
        assert key in obj
    assert obj["task"] == "narma10" and obj["reservoir"] == "esn" and obj["state_dim"] == 30
    assert obj["seeds"] == [0, 1] and len(obj["ci95"]) == 2


def test_cli_set_passes_reservoir_options(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["bench", "narma10", "-r", "esn", "--size", "20", "--seeds", "1", "--json", *FAST]
    assert main(base) == 0
    a = json.loads(capsys.readouterr().out)["value"]
    assert main([*base, "--set", "spectral_radius=0.2", "--set", "input_scaling=1.0"]) == 0
    b = json.loads(capsys.readouterr().out)["value"]
    assert a != b
    assert main([*base, "--set", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_report_tables_keep_the_latest_per_reservoir(tmp_path: Path) -> None:
    from reservoir.report import load_results, write_report

    base = {
        "task": "t",
        "metric": "nmse",
        "ci95": None,
        "seeds": [0],
        "n_train": 1,
        "n_test": 1,
        "size": None,
    }
    y = np.zeros(5)
    write_report(tmp_path, {**base, "reservoir": "a", "value": 0.5, "state_dim": 3}, y, y)
    write_report(tmp_path, {**base, "reservoir": "a", "value": 0.25, "state_dim": 3}, y, y)
    write_report(
        tmp_path, {**base, "reservoir": "b", "value": 0.75, "state_dim": 4, "ci95": [0.7, 0.8]}, y, y
    )
    rows = {r["reservoir"]: r["value"] for r in load_results(tmp_path)}
    assert rows == {"a": 0.25, "b": 0.75}
    md = (tmp_path / "summary.md").read_text()
    assert "| t | a | 3 | nmse | 0.25 | - | 1 |" in md and "[0.7, 0.8]" in md and "0.5 " not in md


def test_cli_report_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for kind in ("esn", "delay-line"):
        assert (
            main(
                [
                    "bench",
                    "narma10",
                    "-r",
                    kind,
                    "--size",
                    "20",
                    "--seeds",
                    "1",
                    "--report",
                    str(tmp_path),
                    *FAST,
                ]
            )
            == 0
        )
    out = capsys.readouterr().out
    assert "narma10 / delay-line" in out and "nmse =" in out
    assert (tmp_path / "narma10_esn.png").stat().st_size > 1000
    md = (tmp_path / "summary.md").read_text()
    assert "| narma10 | delay-line |" in md and "| narma10 | esn |" in md
    assert "<table" in (tmp_path / "summary.html").read_text()


def test_cli_classification_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["bench", "digits", "-r", "delay-line", "--seeds", "1", "--json", "--report", str(tmp_path)])
        == 0
    )
    obj = json.loads(capsys.readouterr().out)
    assert obj["metric"] == "accuracy" and obj["value"] > 0.9 and obj["n_classes"] == 10
    assert (tmp_path / "digits_delay-line.png").exists()


def test_cli_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "wide.npy", np.zeros((100, 3)))
    rc = main(["bench", "forecast", "-r", "esn", "--series", str(tmp_path / "wide.npy"), "--json"])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""
    assert "one-column" in cap.err and "(100, 3)" in cap.err
    assert main(["bench", "classify", "-r", "esn"]) == 2
    assert "--data" in capsys.readouterr().err


def test_cli_asic_without_daemon_substrate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "daemon.substrate", None)
    assert main(["bench", "narma10", "-r", "asic", "--simulate", *FAST]) == 1
    assert "daemon.substrate.make_substrate" in capsys.readouterr().err


def test_cli_asic_substrate_errors_are_clean(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("daemon.substrate")

    def make_substrate(args: object) -> object:
        raise ValueError("the asic reservoir needs --simulate or --config FILE")

    fake.make_substrate = make_substrate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "daemon.substrate", fake)
    assert main(["bench", "narma10", "-r", "asic", *FAST]) == 2
    assert "--simulate or --config" in capsys.readouterr().err


def test_cli_asic_with_a_substrate_factory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("daemon.substrate")
    seen: dict[str, object] = {}

    class Closing(RateModelSubstrate):
        def close(self) -> None:
            seen["closed"] = True

    def make_substrate(args: object) -> object:
        seen["simulate"] = getattr(args, "simulate", None)
        seen["slot_ns"] = getattr(args, "slot_ns", None)
        return Closing(rate_hz=20_000, seed=0)

    fake.make_substrate = make_substrate  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "daemon.substrate", fake)
    assert (
        main(
            ["bench", "narma10", "-r", "asic", "--simulate", "--size", "12", "--seeds", "1", "--json", *FAST]
        )
        == 0
    )
    obj = json.loads(capsys.readouterr().out)
    assert seen == {"simulate": True, "slot_ns": 1_000_000, "closed": True}
    assert obj["reservoir"] == "asic" and obj["state_dim"] == 12 and "noise_floor" in obj
    assert obj["null"]["rate_hz"] > 0 and obj["null"]["value"] > 0.8


def test_noise_floor_and_matched_null_average_every_seed() -> None:
    """Seeds at different event rates: the floor is the slot-weighted mean over all seeds, not the last."""
    from reservoir.asic import NoiseStats
    from reservoir.substrate import PoissonSubstrate
    from reservoir.tasks import narma10_task

    made: list[object] = []

    def sub(seed: int) -> PoissonSubstrate:
        s = PoissonSubstrate(rate_hz=10_000.0 * (1 + 4 * seed), invalid_p=0.0, seed=seed)
        made.append(s)
        return s

    res = run_bench(
        narma10_task(n_train=200, n_test=100),
        "asic",
        size=6,
        seeds=[0, 1],
        options={"substrate": sub},
        with_null=True,
    ).summary
    m = res["noise_floor"]["mean_count_per_slot"]
    assert len(made) == 2
    assert m == pytest.approx((10 + 50) / 2, rel=0.05)  # equal slots per seed; the last seed alone: 50
    assert res["null"]["rate_hz"] == pytest.approx(m / 1e-3)
    a, b = NoiseStats(1, 10, 100, 0), NoiseStats(1, 30, 1500, 0)
    assert (a + b).floor()["mean_count_per_slot"] == pytest.approx(1600 / 40)  # weighted by slots
