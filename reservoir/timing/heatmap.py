"""Operating-point maps of the analysis report: one heatmap per board and metric over voltage x frequency.

Rows are dicts with ``voltage_v``, ``freq_mhz``, optionally ``board`` and any metric of :data:`HEATMAPS`
(a row without a metric is ignored for that map). Rows at the same point are averaged. Cell labels are
black on light colours and white on dark ones; points with no value are grey.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import Normalize

#: Metric key in a point row -> map title. Event statistics first, then the daemon's sweep summaries.
HEATMAPS: tuple[tuple[str, str], ...] = (
    ("cv", "CV of intervals"),
    ("fano", "Fano factor (window ~10 mean intervals)"),
    ("invalid_fraction", "invalid-share fraction"),
    ("rate_vs_expected", "nonce rate / expected"),
    ("j_per_th", "J/TH (board energy per terahash)"),
    ("power_mean_w", "board power (W)"),
    ("chip_temp_max_c", "chip temperature, max (°C)"),
)
#: Keys whose values come from the per-point sweep summaries (power readings), not from the events.
POWER_KEYS = ("j_per_th", "power_mean_w", "chip_temp_max_c")
#: Figure size limits (inches at 100 dpi).
MIN_W, MIN_H, MAX_W = 4.0, 3.1, 14.0


def slug(name: str) -> str:
    """A file-name-safe form of a stream or board name."""
    return "".join(c if c.isalnum() else "_" for c in name)[:60] or "stream"


def by_board(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Rows grouped by ``board`` (as text; rows without one under ""), boards sorted."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(str(r.get("board") or ""), []).append(r)
    return dict(sorted(out.items()))


def _value(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def grid(rows: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float], np.ndarray] | None:
    """(voltages, frequencies, mean of ``key`` per cell with NaN where unmeasured); None without values."""
    vals = []
    for r in rows:
        v, f, x = _value(r.get("voltage_v")), _value(r.get("freq_mhz")), _value(r.get(key))
        if v is not None and f is not None and x is not None:
            vals.append((round(v, 4), round(f, 3), x))
    if not vals:
        return None
    vs = sorted({v for v, _, _ in vals})
    fs = sorted({f for _, f, _ in vals})
    acc: dict[tuple[int, int], list[float]] = {}
    for v, f, x in vals:
        acc.setdefault((vs.index(v), fs.index(f)), []).append(x)
    g = np.full((len(vs), len(fs)), np.nan)
    for (i, j), xs in acc.items():
        g[i, j] = float(np.mean(xs))
    return vs, fs, g


def text_colour(rgba: Sequence[float]) -> str:
    """Black on a light cell, white on a dark one (relative luminance of the sRGB colour)."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgba[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.18 else "white"


def heatmap(
    rows: Sequence[Mapping[str, Any]], key: str, title: str, out_dir: Path, board: str = ""
) -> str | None:
    """Draw the map of ``key`` for one board's rows into ``out_dir``; the PNG name, None without values."""
    got = grid(rows, key)
    if got is None:
        return None
    vs, fs, g = got
    finite = g[np.isfinite(g)]
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = 0.05 * abs(hi) or 0.05
        lo, hi = lo - pad, hi + pad
    norm = Normalize(lo, hi)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#d9d9d9")
    w = min(MAX_W, max(MIN_W, 2.4 + 0.9 * len(fs)))
    h = max(MIN_H, 1.8 + 0.55 * len(vs))
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(np.ma.masked_invalid(g), origin="lower", aspect="auto", cmap=cmap, norm=norm)
    ax.set_xticks(range(len(fs)), [f"{f:g}" for f in fs], fontsize=9, rotation=45 if len(fs) > 8 else 0)
    ax.set_yticks(range(len(vs)), [f"{v:g}" for v in vs], fontsize=9)
    size = 10 if len(fs) <= 6 else 8 if len(fs) <= 12 else 6
    for i, j in np.ndindex(g.shape):
        if np.isfinite(g[i, j]):
            colour = text_colour(cmap(norm(g[i, j])))
            ax.text(j, i, f"{g[i, j]:.3g}", ha="center", va="center", fontsize=size, color=colour)
    ax.set_xlabel("frequency (MHz)", fontsize=10)
    ax.set_ylabel("core voltage (V)", fontsize=10)
    ax.set_title(f"{board}: {title}" if board else title, fontsize=11)
    fig.colorbar(im, ax=ax)
    name = f"heat_{slug(board)}_{key}.png" if board else f"heat_{key}.png"
    fig.savefig(out_dir / name, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return name
