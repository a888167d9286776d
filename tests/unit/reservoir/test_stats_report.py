"""The HTML report: per-stream PNGs, operating-point heatmaps (J/TH when power is known), verdict table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reservoir.timing import analyze_stream, synth
from reservoir.timing.report import write_report

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


def test_cell_labels_contrast_with_the_colour() -> None:
    import matplotlib.pyplot as plt

    from reservoir.timing.heatmap import text_colour

    viridis = plt.get_cmap("viridis")
    assert text_colour(viridis(1.0)) == "black"  # yellow
    assert text_colour(viridis(0.0)) == "white"  # dark purple
    assert text_colour((1.0, 1.0, 1.0, 1.0)) == "black" and text_colour((0.0, 0.0, 0.0, 1.0)) == "white"


def test_one_map_per_board_and_warnings_after_the_results(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t = synth.poisson(500, 5.0, rng)
    res = analyze_stream(t, name="x", mc=False)
    grid = [(1.1, 400.0), (1.1, 485.0), (1.2, 400.0)]
    points = [
        {"board": b, "voltage_v": v, "freq_mhz": f, "cv": 1.0 + 0.1 * i}
        for b in ("b1", "b2")
        for i, (v, f) in enumerate(grid)
    ]
    warnings = [f"stream 'p{i}': 3 events, at least 30 are needed" for i in range(14)]
    path = write_report(
        [res], {"x": np.diff(t) / 1e9}, tmp_path / "r", points=points, notes=["n"], warnings=warnings
    )
    page = path.read_text()
    for b in ("b1", "b2"):
        assert (tmp_path / "r" / f"heat_{b}_cv.png").read_bytes()[:8] == PNG_MAGIC
        assert f"<h3>board {b}</h3>" in page
    assert not (tmp_path / "r" / "heat_cv.png").exists()  # boards are never merged
    assert "14 warning(s)" in page and page.count("are needed") == 15  # the summary line + 14 items
    assert page.index("are needed") > page.index("s000_x_fano.png")  # below the results
    assert "<details>" in page
