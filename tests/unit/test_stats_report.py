"""The HTML report: per-stream PNGs, operating-point heatmaps (J/TH when power is known), verdict table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reservoir.stats import analyze_stream, synth
from reservoir.stats.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_with_power_has_j_per_th_heatmap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = synth.poisson(500, 5.0, rng)
    res = analyze_stream(t, name="x", mc=False)
    points = [
        {"voltage_v": v, "freq_mhz": f, "cv": 1.0 + 0.01 * i, "fano": 1.0, "j_per_th": 20.0 + i}
        for i, (v, f) in enumerate([(1.1, 400.0), (1.1, 485.0), (1.2, 400.0), (1.2, 485.0)])
    ]
    path = write_report([res], {"x": np.diff(t) / 1e9}, tmp_path / "r", points=points, notes=["a <note>"])
    html = path.read_text()
    assert "heat_j_per_th.png" in html and "no power data" not in html
    assert "a &lt;note&gt;" in html  # escaped
    assert "invalid-share fraction: no data" in html
    for name in ("heat_j_per_th.png", "heat_cv.png", "s000_x_hist.png", "s000_x_qq.png", "s000_x_fano.png"):
        assert (tmp_path / "r" / name).read_bytes()[:8] == PNG_MAGIC
    assert "<td>poisson</td>" in html
