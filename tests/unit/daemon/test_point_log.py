"""Per-point sweep summaries in the log stream: written as the daemon writes them, read back by analyze,
drawn as the V/f efficiency map (J/TH) of the report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.cli import main
from daemon.events import LOG_SCHEMA, make_log_batch
from daemon.plan_points import SweepPoint
from daemon.plan_summary import PointAccumulator, summarize
from daemon.point_log import read_point_summaries
from daemon.safety import Telemetry
from tests.unit.cli.test_analyze_cmd import make_recording

GRID = [(1.15, 485.0), (1.15, 525.0), (1.2, 485.0), (1.2, 525.0)]


def _summary_row(board: str, i: int, v: float, f: float, power_w: float) -> pa.RecordBatch:
    """The log row the supervisor writes for a finished sweep point (Supervisor.summary)."""
    acc = PointAccumulator()
    acc.add_events(np.ones(300, bool), np.full(300, 256.0))
    for p in (power_w - 0.5, power_w + 0.5):
        acc.add_telemetry(Telemetry(chip_temp_c=40.0 + i, regulator_temp_c=50.0, power_w=p))
    s = summarize(SweepPoint(i, v, f, 256.0), acc, dwell_s=3.0, chips=1)
    return make_log_batch(10**9 * (i + 1), board, "plan", {"plan": "sw", "summary": dataclasses.asdict(s)})


def _write_log(path: Path, batches: list[pa.RecordBatch]) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, LOG_SCHEMA) as w:
        for b in batches:
            w.write_batch(b)


def _add_sweep_log(rec: Path, board: str = "a", torn: bool = False) -> None:
    rows = [make_log_batch(0, board, "plan", {"plan": "sw", "kind": "sweep", "i": 0, "n": 4})]
    rows += [_summary_row(board, i, v, f, 8.0 + i) for i, (v, f) in enumerate(GRID)]
    rows.append(make_log_batch(9, board, "setpoint", {"summary": "not a plan row"}))
    _write_log(rec / "log-000000.arrows", rows[:3])
    part = rec / "log-000001.arrows.part"
    _write_log(part, rows[3:])
    if torn:  # the last batch is cut: the rows before it are kept
        data = part.read_bytes()
        part.write_bytes(data[: len(data) - 60])


def test_read_point_summaries_from_the_log(tmp_path: Path) -> None:
    rec = make_recording(tmp_path, torn_part=False)
    _add_sweep_log(rec, torn=True)
    rows = read_point_summaries(rec)
    assert [(r["voltage_v"], r["freq_mhz"]) for r in rows] == GRID
    r0 = rows[0]
    assert r0["board"] == "a" and r0["plan"] == "sw" and r0["index"] == 0
    assert (
        r0["power_mean_w"] == pytest.approx(8.0)
        and r0["chip_temp_max_c"] == 40.0
        and rows[3]["chip_temp_max_c"] == 43.0
    )
    th_s = r0["hashrate_ghs"] / 1000.0
    assert r0["j_per_th"] == pytest.approx(8.0 / th_s)


def test_recording_without_log_has_no_summaries(tmp_path: Path) -> None:
    assert read_point_summaries(make_recording(tmp_path, torn_part=False)) == []


def test_finished_segment_wins_over_its_part(tmp_path: Path) -> None:
    rec = tmp_path / "r"
    rec.mkdir()
    rows = [_summary_row("a", i, v, f, 9.0) for i, (v, f) in enumerate(GRID)]
    _write_log(rec / "log-000000.arrows", rows)
    _write_log(rec / "log-000000.arrows.part", rows)
    (rec / "log-000001.arrows").write_bytes(b"garbage, not arrow")
    assert len(read_point_summaries(rec)) == 4


def test_report_draws_the_efficiency_map_per_board(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = make_recording(tmp_path, torn_part=False)
    _add_sweep_log(rec)
    rep = tmp_path / "report"
    assert main(["analyze", str(rec), "--report", str(rep), "--no-mc"]) == 0
    page = (rep / "index.html").read_text()
    for key in ("j_per_th", "power_mean_w", "chip_temp_max_c", "cv"):
        assert (rep / f"heat_a_{key}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"src='heat_a_{key}.png'" in page
    assert "no power data" not in page and "Sweep points" in page and "<td>sw</td>" in page
    assert json.dumps("board a")[1:-1] in page and "board b" in page
