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

from reservoir.timing.heatmap import HEATMAPS, POWER_KEYS, by_board, heatmap, slug
from reservoir.timing.verdict import StreamResult, summary

F64 = NDArray[np.float64]

#: Per-stream figures are drawn for at most this many streams (the table lists all of them).
MAX_STREAM_PLOTS = 48
#: Points in the QQ plot (an even subsample of the order statistics).
QQ_POINTS = 2000


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


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.{digits}g}"  # not computed (e.g. --no-mc)
    return html.escape(str(x))


#: Page style: readable tables, maps laid out side by side and wrapping.
CSS = (
    "body{font-family:sans-serif;margin:1.5em}h1{font-size:24px;overflow-wrap:anywhere}"
    "table{border-collapse:collapse;margin:0.5em 0 1em}"
    "td,th{border:1px solid #999;padding:3px 8px;font-size:13px}th{background:#eee}"
    ".maps{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:12px}"
    ".maps img{max-width:100%}.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}"
    ".note{color:#444}details{margin:0.5em 0}"
)
#: Per-point sweep summary columns: (row key, header).
SWEEP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("board", "board"),
    ("plan", "plan"),
    ("index", "point"),
    ("voltage_v", "V"),
    ("freq_mhz", "MHz"),
    ("ticket_diff", "ticket diff"),
    ("nonce_rate_hz", "nonces/s"),
    ("hashrate_ghs", "GH/s"),
    ("power_mean_w", "power (W)"),
    ("j_per_th", "J/TH"),
    ("chip_temp_max_c", "chip max (°C)"),
    ("regulator_temp_max_c", "VR max (°C)"),
    ("clamped", "clamped"),
)


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _point_maps(points: Sequence[Mapping[str, Any]], out: Path) -> list[str]:
    """The operating-point section: per board one map per metric, then the sweep summaries table."""
    parts = [
        "<h2>Operating points</h2><p class='note'>One map per board and metric over core voltage x frequency "
        "(mean over the rows at a point; grey: not measured). CV, Fano factor, invalid fraction and rate "
        "come from the events; J/TH, power and temperature from the daemon's per-point sweep summaries.</p>"
    ]
    for board, rows in by_board(points).items():
        cells = {(r.get("voltage_v"), r.get("freq_mhz")) for r in rows}
        parts.append(f"<h3>board {html.escape(board)}</h3>" if board else "")
        if len(cells) < 2:
            parts.append("<p class='note'>One operating point only: no map.</p>")
            continue
        imgs, missing = [], []
        for key, ttl in HEATMAPS:
            png = heatmap(rows, key, ttl, out, board)
            if png:
                alt = html.escape(f"{board}: {ttl}" if board else ttl, quote=True)
                imgs.append(f"<img src='{png}' alt='{alt}'>")
            elif key == "j_per_th":
                missing.append("J/TH: no power data (no sweep summaries with power readings)")
            elif key not in POWER_KEYS:
                missing.append(f"{ttl}: no data")
        parts.append("<div class='maps'>" + "".join(imgs) + "</div>")
        if missing:
            parts.append(f"<p class='note'>{html.escape('; '.join(missing))}.</p>")
    sweep = [r for r in points if any(r.get(k) is not None for k in POWER_KEYS)]
    if sweep:
        parts.append("<h3>Sweep points (daemon summaries from the recording log)</h3>")
        table = [[r.get(k) for k, _ in SWEEP_COLUMNS] for r in sweep]
        parts.append(_table([h for _, h in SWEEP_COLUMNS], table))
    return parts


def _warnings(warnings: Sequence[str]) -> str:
    """All warnings, collapsed under one line (they would otherwise push the results off the page)."""
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    head = f"{len(warnings)} warning(s), e.g. {warnings[0]}"
    return f"<h2>Warnings</h2><details><summary>{html.escape(head)}</summary><ul>{items}</ul></details>"


def write_report(
    results: Sequence[StreamResult],
    gaps_s: Mapping[str, F64],
    out_dir: str | Path,
    *,
    points: Sequence[Mapping[str, Any]] = (),
    title: str = "asicrc analyze",
    notes: Sequence[str] = (),
    warnings: Sequence[str] = (),
) -> Path:
    """Write ``index.html`` and its PNGs into ``out_dir`` (created); returns the HTML path.

    ``gaps_s``: stream name -> intervals (s) for the per-stream plots. ``points``: rows with voltage_v,
    freq_mhz, optionally board, and any metric of :data:`reservoir.timing.heatmap.HEATMAPS` (maps per board
    with at least two points; rows with power readings are also listed as sweep points). ``notes`` are shown
    under the title; ``warnings`` (e.g. streams skipped) are counted there and listed at the end.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"]
    parts.append(f"<style>{CSS}</style></head><body>")
    parts.append(f"<h1>{html.escape(title)}</h1>")
    for n in notes:
        parts.append(f"<p class='note'>{html.escape(n)}</p>")
    if warnings:
        parts.append(f"<p class='note'>{len(warnings)} warning(s): see <a href='#warnings'>the end</a>.</p>")
    parts.append("<h2>Verdicts</h2><table><tr>")
    cols = ["stream", "events", "rate (Hz)", "CV", "CV null 95 %", "Fano range", "KS p", "AD p", "LB p"]
    parts.append(
        "".join(f"<th>{c}</th>" for c in [*cols, "verdict", "kind / artefacts", "evidence"]) + "</tr>"
    )
    for r in results:
        s = r.stats
        fr = f"{min(s.fano.values()):.3g}-{max(s.fano.values()):.3g}" if s.fano else "-"
        band = "-" if math.isnan(s.cv_null95[0]) else f"{s.cv_null95[0]:.3g}-{s.cv_null95[1]:.3g}"
        cells = [s.name, s.n_events, s.rate_hz, s.cv, band, fr, s.pvalues["ks"], s.pvalues["ad"]]
        cells += [s.pvalues["ljung-box"], r.verdict, r.kind, summary(r)]
        parts.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>")
    parts.append("</table>")
    if any(math.isnan(r.stats.cv_null95[0]) for r in results):
        parts.append("<p class='note'>-: not computed (Monte-Carlo p-values and null bands: --no-mc).</p>")
    if points:
        parts += _point_maps(points, out)
    parts.append("<h2>Streams</h2>")
    for i, r in enumerate(results[:MAX_STREAM_PLOTS]):
        g = gaps_s.get(r.stats.name)
        if g is None or len(g) < 2:
            continue
        pngs = plot_stream(r, g, out, f"s{i:03d}_{slug(r.stats.name)}")
        parts.append(f"<h3>{html.escape(r.stats.name)}: {r.verdict} {html.escape(r.kind or '')}</h3>")
        parts.append("<div class='row'>" + "".join(f"<img src='{p}' alt='{p}'>" for p in pngs) + "</div>")
    if len(results) > MAX_STREAM_PLOTS:
        parts.append(f"<p>Plots shown for the first {MAX_STREAM_PLOTS} of {len(results)} streams.</p>")
    if warnings:
        parts.append(f"<div id='warnings'>{_warnings(warnings)}</div>")
    parts.append("</body></html>")
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
