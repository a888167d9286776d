"""``bench --report`` pages: plots embedded, intervals inside the metric's range, noise floor as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.cli import main
from reservoir.bench import ci95, metric_bounds, run_bench
from reservoir.report import bounded_ci, noise_floor_rows, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--n-train", "400", "--n-test", "200"]


def _summary(**kw: Any) -> dict[str, Any]:
    base = {"task": "t", "reservoir": "r", "metric": "nmse", "value": 0.5, "ci95": None, "seeds": [0, 1]}
    base.update({"n_train": 10, "n_test": 5, "size": None, "state_dim": 3})
    return {**base, **kw}


def test_ci95_is_clipped_to_the_metric_range() -> None:
    v = [0.90, 1.0, 1.0]
    lo, hi = ci95(v)  # type: ignore[misc]
    assert hi > 1.0  # the plain t-interval leaves [0, 1]
    clo, chi = ci95(v, metric_bounds("accuracy"))  # type: ignore[misc]
    assert (clo, chi) == (pytest.approx(lo), 1.0)
    assert metric_bounds("mc", 50) == (0.0, 50.0)
    assert metric_bounds("nmse")[0] == 0.0 and np.isinf(metric_bounds("nmse")[1])
    assert ci95([0.01, 0.02, 0.9], metric_bounds("nmse"))[0] == 0.0  # type: ignore[index]


def test_stored_unclipped_interval_is_shown_clipped() -> None:
    assert bounded_ci(_summary(metric="accuracy", ci95=[0.9146, 1.028])) == [0.9146, 1.0]
    assert bounded_ci(_summary(metric="nmse", ci95=[-0.1, 0.3])) == [0.0, 0.3]
    assert bounded_ci(_summary(ci95=None)) is None


def test_memory_capacity_summary_has_r2_per_delay() -> None:
    r = run_bench("memory-capacity", "esn", size=20, seeds=2, task_options={"n_train": 300, "n_test": 200})
    r2 = r.summary["r2_per_delay"]
    assert len(r2) == 50 and all(0.0 <= x <= 1.0 for x in r2)
    assert sum(r2) == pytest.approx(r.summary["value"])
    lo, hi = r.summary["ci95"]
    assert 0.0 <= lo <= hi <= 50.0


def test_summary_html_embeds_every_plot_and_tabulates_the_noise_floor(tmp_path: Path) -> None:
    y = np.linspace(0, 1, 20)
    floor = {"mean_count_per_slot": 0.07, "count": 3.78, "log_iv_mean": float("inf"), "invalid_frac": 0.5}
    write_report(tmp_path, _summary(reservoir="a", metric="accuracy", ci95=[0.9146, 1.028]), y > 0.5, y > 0.4)
    null = {"value": 0.1, "rate_hz": 70.0, "ci95": None, "per_seed": [0.1]}
    write_report(tmp_path, _summary(reservoir="asic", noise_floor=floor, null=null), y, y)
    page = (tmp_path / "summary.html").read_text()
    for name in ("t_a.png", "t_asic.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
        assert f"<img src='{name}'" in page and f"<a href='{name}'>" in page
    assert "[0.9146, 1]" in page and "1.028" not in page
    assert "{" not in page.split("<body>")[1]  # no raw Python dict
    assert "mean events per slot and chip" in page and "<td>3.78</td>" in page and "<td>inf</td>" in page
    assert "70 events/s per chip" in page
    md = (tmp_path / "summary.md").read_text()
    assert "![t / asic](t_asic.png)" in md and "| asic | 0.07 | 3.78 | inf | 0.5 |" in md


def test_memory_capacity_plot_and_cli_noise_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "bench",
        "memory-capacity",
        "-r",
        "poisson-null",
        "--rate",
        "2000",
        "--size",
        "12",
        "--seeds",
        "2",
    ]
    assert main([*argv, *FAST, "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "{" not in out and "events per slot and chip: count" in out
    assert (tmp_path / "memory-capacity_poisson-null.png").stat().st_size > 1000
    rec = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
    assert len(rec["r2_per_delay"]) == 50


def test_noise_floor_rows_are_labelled_in_order() -> None:
    rows = noise_floor_rows({"extra": 2.0, "count": 0.5, "mean_count_per_slot": 4.0})
    assert rows == [
        ("mean events per slot and chip", "4"),
        ("count: relative shot noise 1/√n", "0.5"),
        ("extra", "2"),
    ]
