"""HTML report of an analysis: per-stream interval histogram, QQ plot and Fano curve, operating-point heatmaps
and the verdict table. PNGs are drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from numpy.typing import NDArray

from reservoir.stats.verdict import StreamResult, summary

F64 = NDArray[np.float64]

#: Per-stream figures are drawn for at most this many streams (the table lists all of them).
MAX_STREAM_PLOTS = 48
#: Points in the QQ plot (an even subsample of the order statistics).
QQ_POINTS = 2000
#: Heatmap metrics: key in a point row -> title.
HEATMAPS: tuple[tuple[str, str], ...] = (
    ("cv", "CV of intervals"),
    ("fano", "Fano factor (window ~10 mean intervals)"),
    ("invalid_fraction", "invalid-share fraction"),
    ("rate_vs_expected", "nonce rate / expected"),
    ("j_per_th", "J/TH"),
)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)[:60] or "stream"


def plot_stream(res: StreamResult, gaps_s: F64, out_dir: Path, stem: str) -> list[str]:
    """Histogram (log axes, fitted exponential), QQ plot and Fano curve of one stream; returns PNG names."""
    s = res.stats
    names: list[str] = []
    lam = 1.0 / s.mean_interval_s
    pos = gaps_s[gaps_s > 0]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    if len(pos):
        bins = np.logspace(np.log10(pos.min()), np.log10(pos.max()), 60)
        ax.hist(pos, bins=list(bins), density=True, alpha=0.6, label=f"intervals (n={len(gaps_s)})")
        x = np.logspace(np.log10(pos.min()), np.log10(pos.max()), 200)
        ax.plot(x, lam * np.exp(-lam * x), "r-", label=f"exponential, rate {lam:.3g} Hz")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("interval (s)")
    ax.set_ylabel("density (1/s)")
    ax.set_title(f"{s.name}: intervals", fontsize=9)
    ax.legend(fontsize=7)
    names.append(_save(fig, out_dir, f"{stem}_hist.png"))

    fig, ax = plt.subplots(figsize=(4, 4))
    xs = np.sort(gaps_s)
    n = len(xs)
    idx = np.unique(np.linspace(0, n - 1, min(n, QQ_POINTS)).astype(np.int64))
    theo = -np.log1p(-(idx + 0.5) / n) * s.mean_interval_s
    ax.plot(theo, xs[idx], ".", ms=2)
    lim = float(max(theo.max(), xs.max()))
    ax.plot([0, lim], [0, lim], "r-", lw=1)
    ax.set_xlabel("exponential quantile (s)")
    ax.set_ylabel("observed interval (s)")
    ax.set_title(f"{s.name}: QQ vs exponential", fontsize=9)
    names.append(_save(fig, out_dir, f"{stem}_qq.png"))

    fig, ax = plt.subplots(figsize=(5, 3.6))
    if s.fano:
        w = np.array(sorted(s.fano))
        ax.fill_between(
            w,
            [s.fano_null95[v][0] for v in w],
            [s.fano_null95[v][1] for v in w],
            alpha=0.3,
            label="Poisson 95 %",
        )
        if s.fano_shuffle95:
            ax.plot(w, [s.fano_shuffle95[v][0] for v in w], "k--", lw=0.8, label="interval shuffle 95 %")
            ax.plot(w, [s.fano_shuffle95[v][1] for v in w], "k--", lw=0.8)
        ax.plot(w, [s.fano[v] for v in w], "o-", label="Fano factor")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        if max(s.fano.values()) > 5 or min(s.fano.values()) < 0.2:
            ax.set_yscale("log")
    ax.set_xlabel("window (s)")
    ax.set_ylabel("Var N / E N")
    ax.set_title(f"{s.name}: Fano factor", fontsize=9)
    ax.legend(fontsize=7)
    names.append(_save(fig, out_dir, f"{stem}_fano.png"))
    return names


def _save(fig: Any, out_dir: Path, name: str) -> str:
    fig.savefig(out_dir / name, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return name


def heatmap(rows: Sequence[Mapping[str, Any]], key: str, title: str, out_dir: Path) -> str | None:
    """Heatmap of ``key`` over voltage_v x freq_mhz (mean over rows at one point); None when no values."""
    raw = [(float(r["voltage_v"]), float(r["freq_mhz"]), r.get(key)) for r in rows]
    vals = [(v, f, float(x)) for v, f, x in raw if x is not None and math.isfinite(float(x))]
    if not vals:
        return None
    vs = sorted({v for v, _, _ in vals})
    fs = sorted({f for _, f, _ in vals})
    grid = np.full((len(vs), len(fs)), np.nan)
    acc: dict[tuple[int, int], list[float]] = {}
    for v, f, x in vals:
        acc.setdefault((vs.index(v), fs.index(f)), []).append(x)
    for (i, j), xs in acc.items():
        grid[i, j] = float(np.mean(xs))
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(fs), 1.2 + 0.5 * len(vs)))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(fs)), [f"{f:g}" for f in fs], fontsize=7)
    ax.set_yticks(range(len(vs)), [f"{v:g}" for v in vs], fontsize=7)
    for (i, j), _ in acc.items():
        ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xlabel("frequency (MHz)")
    ax.set_ylabel("core voltage (V)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    return _save(fig, out_dir, f"heat_{key}.png")


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.{digits}g}"
    return html.escape(str(x))


def write_report(
    results: Sequence[StreamResult],
    gaps_s: Mapping[str, F64],
    out_dir: str | Path,
    *,
    points: Sequence[Mapping[str, Any]] = (),
    title: str = "asicrc analyze",
    notes: Sequence[str] = (),
) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir`` (created); returns the HTML path.

    ``gaps_s``: stream name -> intervals (s) for the per-stream plots. ``points``: one row per operating point
    with voltage_v, freq_mhz and any of cv, fano, invalid_fraction, rate_vs_expected, j_per_th (heatmaps are
    drawn when there are several points).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;font-size:13px}</style></head><body>"
    )
    parts.append(f"<h1>{html.escape(title)}</h1>")
    for n in notes:
        parts.append(f"<p>{html.escape(n)}</p>")
    parts.append("<h2>Verdicts</h2><table border='1' style='border-collapse:collapse'><tr>")
    cols = ["stream", "events", "rate (Hz)", "CV", "CV null 95 %", "Fano range", "KS p", "AD p", "LB p"]
    parts.append(
        "".join(f"<th>{c}</th>" for c in [*cols, "verdict", "kind / artefacts", "evidence"]) + "</tr>"
    )
    for r in results:
        s = r.stats
        fr = f"{min(s.fano.values()):.3g}-{max(s.fano.values()):.3g}" if s.fano else "-"
        band = f"{s.cv_null95[0]:.3g}-{s.cv_null95[1]:.3g}"
        cells = [s.name, s.n_events, s.rate_hz, s.cv, band, fr, s.pvalues["ks"], s.pvalues["ad"]]
        cells += [s.pvalues["ljung-box"], r.verdict, r.kind, summary(r)]
        parts.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    if len(points) > 1:
        parts.append("<h2>Operating points</h2>")
        for key, ttl in HEATMAPS:
            png = heatmap(points, key, ttl, out)
            if png:
                parts.append(f"<img src='{png}' alt='{html.escape(ttl)}'>")
            elif key == "j_per_th":
                parts.append("<p>J/TH: no power data in this recording.</p>")
            else:
                parts.append(f"<p>{html.escape(ttl)}: no data.</p>")
    parts.append("<h2>Streams</h2>")
    for i, r in enumerate(results[:MAX_STREAM_PLOTS]):
        g = gaps_s.get(r.stats.name)
        if g is None or len(g) < 2:
            continue
        pngs = plot_stream(r, g, out, f"s{i:03d}_{_slug(r.stats.name)}")
        parts.append(f"<h3>{html.escape(r.stats.name)}: {r.verdict} {html.escape(r.kind or '')}</h3>")
        parts.append("".join(f"<img src='{p}' alt='{p}'>" for p in pngs))
    if len(results) > MAX_STREAM_PLOTS:
        parts.append(f"<p>Plots shown for the first {MAX_STREAM_PLOTS} of {len(results)} streams.</p>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
