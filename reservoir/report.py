"""Bench reports: a prediction-vs-target plot per run and a summary table across reservoirs (Markdown + HTML).

Results accumulate in ``DIR/results.jsonl`` (one summary per line, latest per task x reservoir wins), so
running ``asicrc bench ... --report DIR`` for several reservoirs builds one table per task.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Test points drawn in the prediction plot (the first ones of the test split).
PLOT_POINTS = 300


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def plot_prediction(path: Path, summary: dict[str, Any], y_test: NDArray[Any], y_pred: NDArray[Any]) -> Path:
    """PNG of prediction against target (series) or a confusion matrix (classification)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    title = f"{summary['task']} / {summary['reservoir']}: {summary['metric']} = {_fmt(summary['value'])}"
    if summary["metric"] == "accuracy":
        labels = np.unique(np.concatenate([y_test, y_pred]))
        idx = {v: i for i, v in enumerate(labels)}
        cm = np.zeros((labels.size, labels.size), dtype=int)
        for t, p in zip(y_test, y_pred):
            cm[idx[t], idx[p]] += 1
        ax.imshow(cm, cmap="Blues")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    else:
        yt = np.asarray(y_test, dtype=float).reshape(len(y_test), -1)[:PLOT_POINTS, 0]
        yp = np.asarray(y_pred, dtype=float).reshape(len(y_pred), -1)[:PLOT_POINTS, 0]
        ax.plot(yt, label="target", lw=1.2)
        ax.plot(yp, label="prediction", lw=1.0, alpha=0.8)
        ax.set_xlabel("test step")
        ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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


COLUMNS = ("task", "reservoir", "state_dim", "metric", "value", "ci95", "seeds", "n_train", "n_test")


def _row(r: dict[str, Any]) -> list[str]:
    ci = r.get("ci95")
    cells = []
    for c in COLUMNS:
        if c == "ci95":
            cells.append("-" if not ci else f"[{ci[0]:.4g}, {ci[1]:.4g}]")
        elif c == "seeds":
            cells.append(str(len(r.get("seeds", []))))
        else:
            cells.append(_fmt(r.get(c)))
    return cells


def write_tables(directory: Path, results: list[dict[str, Any]]) -> tuple[Path, Path]:
    """summary.md and summary.html: one table per task, rows sorted by reservoir."""
    md, body = ["# asicrc bench summary", ""], []
    for task in sorted({r["task"] for r in results}):
        rows = sorted(
            (r for r in results if r["task"] == task), key=lambda r: (r["reservoir"], r["state_dim"])
        )
        md += [f"## {task}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        md += ["| " + " | ".join(_row(r)) + " |" for r in rows]
        md.append("")
        head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in _row(r)) + "</tr>" for r in rows)
        body.append(f"<h2>{html.escape(task)}</h2><table border=1><tr>{head}</tr>{trs}</table>")
    md_path, html_path = directory / "summary.md", directory / "summary.html"
    md_path.write_text("\n".join(md))
    html_path.write_text("<html><body><h1>asicrc bench summary</h1>" + "".join(body) + "</body></html>")
    return md_path, html_path


def write_report(
    directory: str | Path, summary: dict[str, Any], y_test: NDArray[Any], y_pred: NDArray[Any]
) -> list[Path]:
    """Append the summary to results.jsonl, plot this run, rewrite the summary tables; returns the paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with (d / "results.jsonl").open("a") as f:
        f.write(json.dumps(summary) + "\n")
    png = plot_prediction(d / f"{summary['task']}_{summary['reservoir']}.png", summary, y_test, y_pred)
    md, h = write_tables(d, load_results(d))
    return [png, md, h, d / "results.jsonl"]
