"""``asicrc analyze --by point``: one stream per plan point at its own setpoint; ramp steps and events outside
any point are one transition per board, counted apart, never tested and never warned about."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.cli import main
from daemon.events import EVENT_SCHEMA, make_event_batch
from daemon.point_streams import point_runs
from reservoir.timing import synth

#: (point, voltage, frequency, events): a ramp of 14 short steps under point 0, point 0 held, then a ramp
#: of 5 steps under point 1 and point 1 held; 20 events before the plan (point -1) at the floor.
PLAN = [
    (-1, 1.1, 50.0, 20),
    *[(0, 1.2, 50.0 + 30 * k, 6) for k in range(14)],
    (0, 1.2, 485.0, 1500),
    *[(1, 1.2, 485.0 + 7 * k, 4) for k in range(1, 6)],
    (1, 1.2, 525.0, 1500),
]


def _recording(root: Path, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    n = sum(p[3] for p in PLAN)
    t = synth.poisson(n, 100.0, rng)
    cols = {
        k: np.concatenate([np.full(p[3], p[i]) for p in PLAN])
        for i, k in ((0, "point"), (1, "voltage_v"), (2, "freq_mhz"))
    }
    batch = make_event_batch(
        "a",
        t_host_ns=t,
        t_ns=t,
        t_wire_ns=t,
        chip=0,
        core=0,
        small_core=0,
        job_id=np.zeros(n, np.uint8),
        nonce=np.arange(n, dtype=np.uint32),
        valid=True,
        voltage_v=cols["voltage_v"],
        freq_mhz=cols["freq_mhz"],
        ticket_diff=1.0,
        read_id=np.arange(n),
        read_pos=0,
        read_nonces=1,
        point=cols["point"].astype(np.int32),
    )
    rec = root / "rec"
    rec.mkdir()
    with pa.OSFile(str(rec / "events-000000.arrows"), "wb") as f, pa.ipc.new_stream(f, EVENT_SCHEMA) as w:
        w.write_batch(batch)
    return rec


def test_point_runs_split_held_setpoints_from_ramp_steps() -> None:
    n = sum(p[3] for p in PLAN)
    cols = {
        k: np.concatenate([np.full(p[3], p[i]) for p in PLAN])
        for i, k in ((0, "point"), (1, "voltage_v"), (2, "freq_mhz"))
    }
    runs, trans = point_runs(cols, np.arange(n, dtype=np.int64) * 10**7, 30)
    assert [(k, len(sel)) for k, sel in runs] == [((0, 1.2, 485.0), 1500), ((1, 1.2, 525.0), 1500)]
    assert trans is not None
    assert trans.events == 20 + 14 * 6 + 5 * 4 and trans.setpoints == 1 + 14 + 5


def test_without_plan_points_short_setpoints_are_transitions() -> None:
    cols = {
        "voltage_v": np.full(100, 1.2),
        "freq_mhz": np.concatenate([np.full(10, 400.0), np.full(90, 485.0)]),
        "point": np.full(100, -1),
    }
    runs, trans = point_runs(cols, np.arange(100, dtype=np.int64), 30)
    assert [(k, len(s)) for k, s in runs] == [((-1, 1.2, 485.0), 90)]
    assert trans is not None and trans.events == 10


def test_by_point_reports_plan_points_and_one_transition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    rec = _recording(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert main(["analyze", str(rec), "--by", "point", "--json", "--no-mc"]) == 0
    out = capsys.readouterr()
    streams = json.loads(out.out)
    assert [s["stream"] for s in streams] == ["a/p0@1.2V/485MHz", "a/p1@1.2V/525MHz"]
    assert [s["point"] for s in streams] == [0, 1] and [s["n_events"] for s in streams] == [1500, 1500]
    assert "transition a: 124 events at 20 setpoint(s)" in out.err
    assert "at least 30" not in caplog.text and "skipped" not in caplog.text
    assert main(["analyze", str(rec), "--by", "point", "--no-mc"]) == 0
    assert "not tested" in capsys.readouterr().out
