"""Bench reports: a plot per run and a summary page across reservoirs (Markdown + HTML, plots embedded).

Results accumulate in ``DIR/results.jsonl`` (one summary per line, latest per task x reservoir wins), so
running ``asicrc bench ... --report DIR`` for several reservoirs builds one table per task. The plot of a run
is ``DIR/<task>_<reservoir>.png``: prediction against target (regression, forecasting), r² per delay
(memory capacity) or a confusion matrix (classification); ``summary.html`` shows each under its table.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reservoir.bench import metric_bounds

#: Test points drawn in the prediction plot (the first ones of the test split).
PLOT_POINTS = 300
#: Confusion matrices up to this many classes get a count in each cell.
CM_LABEL_MAX = 15
#: Noise-floor keys (reservoir.features.noise_floor) -> readable label, in display order.
NOISE_LABELS: tuple[tuple[str, str], ...] = (
    ("mean_count_per_slot", "mean events per slot and chip"),
    ("count", "count: relative shot noise 1/√n"),
    ("log_iv_mean", "log-interval mean: shot noise (log units)"),
    ("invalid_frac", "invalid fraction: shot noise (absolute)"),
)
COLUMNS = ("task", "reservoir", "state_dim", "metric", "value", "ci95", "seeds", "n_train", "n_test")
CSS = (
    "body{font-family:sans-serif;margin:1.5em;max-width:1100px}"
    "table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #999;padding:3px 9px;"
    "font-size:14px}th{background:#eee}td.n{text-align:right}img{max-width:100%;border:1px solid #ccc}"
    "figure{display:inline-block;margin:0.5em}figcaption{font-size:13px;color:#333}"
)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return "inf" if math.isinf(x) else f"{x:.4g}"
    return str(x)


def png_name(summary: dict[str, Any]) -> str:
    """File name of a run's plot inside the report directory."""
    return f"{summary['task']}_{summary['reservoir']}.png"


def bounded_ci(r: dict[str, Any]) -> list[float] | None:
    """The stored ci95 clipped to the metric's range (results written before clipping was added, too)."""
    ci = r.get("ci95")
    if not ci or ci[0] is None or ci[1] is None:
        return None
    lo, hi = metric_bounds(str(r.get("metric")), len(r.get("r2_per_delay") or ()) or 10**9)
    return [float(np.clip(ci[0], lo, hi)), float(np.clip(ci[1], lo, hi))]


def noise_floor_rows(floor: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of a noise floor in display order; unknown keys keep their name."""
    known = dict(NOISE_LABELS)
    keys = [k for k, _ in NOISE_LABELS if k in floor] + [k for k in floor if k not in known]
    return [(known.get(k, k), _fmt(floor[k])) for k in keys]


def plot_prediction(path: Path, summary: dict[str, Any], y_test: NDArray[Any], y_pred: NDArray[Any]) -> Path:
    """PNG of the run: prediction vs target, r² per delay (memory capacity) or a confusion matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 5.2) if summary["metric"] == "accuracy" else (8, 3.8))
    title = f"{summary['task']} / {summary['reservoir']}: {summary['metric']} = {_fmt(summary['value'])}"
    if summary["metric"] == "accuracy":
        _confusion(fig, ax, y_test, y_pred)
        title += " (first seed)"
    elif summary["metric"] == "mc":
        r2 = summary.get("r2_per_delay")
        if r2 is None:  # a summary from elsewhere: the first seed's predictions
            yt, yp = np.asarray(y_test, dtype=float), np.asarray(y_pred, dtype=float)
            r2 = [float(np.corrcoef(yt[:, k], yp[:, k])[0, 1] ** 2) for k in range(yt.shape[1])]
        k = np.arange(1, len(r2) + 1)
        ax.plot(k, r2, "o-", ms=3)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(f"delay k (steps); the target is u(t-k), k = 1..{len(r2)}")
        ax.set_ylabel("r² of the recall (test)")
        ax.grid(alpha=0.3)
        title += f" = Σ r² over delays 1..{len(r2)}"
    else:
        yt = np.asarray(y_test, dtype=float).reshape(len(y_test), -1)[:PLOT_POINTS, 0]
        yp = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)[:PLOT_POINTS, 0]
        ax.plot(yt, label="target", lw=1.2)
        ax.plot(yp, label="prediction (first seed)", lw=1.0, alpha=0.8)
        ax.set_xlabel(f"test step (first {len(yt)})")
        ax.set_ylabel("target value")
        ax.legend(loc="upper right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _confusion(fig: Any, ax: Any, y_test: NDArray[Any], y_pred: NDArray[Any]) -> None:
    labels = np.unique(np.concatenate([y_test, y_pred]))
    idx = {v: i for i, v in enumerate(labels)}
    cm = np.zeros((labels.size, labels.size), dtype=int)
    for t, p in zip(y_test, y_pred):
        cm[idx[t], idx[p]] += 1
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, label="test samples")
    ax.set_xticks(range(labels.size), [str(v) for v in labels])
    ax.set_yticks(range(labels.size), [str(v) for v in labels])
    if labels.size <= CM_LABEL_MAX:
        half = cm.max() / 2.0
        for i, j in np.ndindex(cm.shape):
            if cm[i, j]:
                colour = "white" if cm[i, j] > half else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")


def load_results(directory: Path) -> list[dict[str, Any]]:
    """Latest summary per (task, reservoir, size) from ``results.jsonl``."""
    f = directory / "results.jsonl"
    if not f.exists():
        return []
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for line in f.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            latest[(r["task"], r["reservoir"], str(r.get("size")))] = r
    return list(latest.values())


def _row(r: dict[str, Any]) -> list[str]:
    ci = bounded_ci(r)
    cells = []
    for c in COLUMNS:
        if c == "ci95":
            cells.append("-" if not ci else f"[{ci[0]:.4g}, {ci[1]:.4g}]")
        elif c == "seeds":
            cells.append(str(len(r.get("seeds", []))))
        else:
            cells.append(_fmt(r.get(c)))
    return cells


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _noise_tables(rows: list[dict[str, Any]]) -> tuple[list[str], str]:
    """Markdown lines and HTML of the shot-noise floors (and matched nulls) of the runs that have one."""
    with_floor = [r for r in rows if r.get("noise_floor")]
    if not with_floor:
        return [], ""
    labels = [lab for lab, _ in noise_floor_rows(with_floor[0]["noise_floor"])]
    head = ["reservoir", *labels, "poisson-null at the measured rate"]
    body = []
    for r in with_floor:
        null = r.get("null")
        null_s = "-"
        if null:
            null_s = (
                f"{r['metric']} {_fmt(null.get('value'))} at {_fmt(null.get('rate_hz'))} events/s per chip"
            )
        body.append([r["reservoir"], *(v for _, v in noise_floor_rows(r["noise_floor"])), null_s])
    md = ["", "Shot-noise floor of the features:", "", "| " + " | ".join(head) + " |"]
    md += ["|" + "---|" * len(head)] + ["| " + " | ".join(b) + " |" for b in body]
    return md, "<h3>Shot-noise floor of the features</h3>" + _html_table(head, body)


def write_tables(directory: Path, results: list[dict[str, Any]]) -> tuple[Path, Path]:
    """summary.md and summary.html: per task a table (rows sorted by reservoir), noise floors, the plots."""
    md, body = ["# asicrc bench summary", ""], []
    for task in sorted({r["task"] for r in results}):
        rows = sorted(
            (r for r in results if r["task"] == task), key=lambda r: (r["reservoir"], r["state_dim"])
        )
        md += [f"## {task}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        md += ["| " + " | ".join(_row(r)) + " |" for r in rows]
        nmd, nhtml = _noise_tables(rows)
        md += nmd
        body.append(f"<h2>{html.escape(task)}</h2>" + _html_table(list(COLUMNS), [_row(r) for r in rows]))
        body.append(nhtml)
        figs = []
        for r in rows:
            png = png_name(r)
            if (directory / png).exists():
                md += ["", f"![{task} / {r['reservoir']}]({png})"]
                src = html.escape(png, quote=True)
                cap = html.escape(f"{task} / {r['reservoir']} ({png})")
                figs.append(
                    f"<figure><a href='{src}'><img src='{src}' alt='{cap}'></a>"
                    f"<figcaption>{cap}</figcaption></figure>"
                )
        body.append("".join(figs))
        md.append("")
    md.append("ci95: Student-t 95 % interval over seeds, clipped to the metric's range.")
    md_path, html_path = directory / "summary.md", directory / "summary.html"
    md_path.write_text("\n".join(md))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>asicrc bench summary</title>"
        f"<style>{CSS}</style></head><body><h1>asicrc bench summary</h1>"
        + "".join(body)
        + "<p>ci95: Student-t 95 % interval of the mean over seeds, clipped to the metric's range "
        "(accuracy [0, 1], memory capacity [0, delays], NMSE &ge; 0).</p></body></html>"
    )
    html_path.write_text(page, encoding="utf-8")
    return md_path, html_path


def write_report(
    directory: str | Path, summary: dict[str, Any], y_test: NDArray[Any], y_pred: NDArray[Any]
) -> list[Path]:
    """Append the summary to results.jsonl, plot this run, rewrite the summary tables; returns the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with (d / "results.jsonl").open("a") as f:
        f.write(json.dumps(summary) + "\n")
    png = plot_prediction(d / png_name(summary), summary, y_test, y_pred)
    md, h = write_tables(d, load_results(d))
    return [png, md, h, d / "results.jsonl"]
