"""Contract check: a recording written by the daemon's own Recorder (docs/recording-format.md) is analysed,
including a segment left open (``.part``) as after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.cli import main
from daemon.recorder import Recorder
from reservoir.timing import synth
from tests.unit.held_events import held_point_batch


def _batches(board: str, t: np.ndarray, read_id: np.ndarray, size: int = 400) -> list[pa.RecordBatch]:
    out = []
    for i in range(0, len(t), size):
        sl = slice(i, i + size)
        out.append(held_point_batch(board, t[sl], read_id[sl], point=-1))
    return out


def test_recorder_output_is_analysed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(21)
    t_a = synth.poisson(3000, 5.0, rng)
    t_b = synth.polling(synth.poisson(3000, 5.0, rng), (1.0, 2.0), rng)
    _, rid_b = np.unique(t_b, return_inverse=True)  # one transport read per poll
    run = tmp_path / "run1"
    rec = Recorder(run, boards=["a", "b"], clock=lambda: 0.0)
    rec.open()
    for b in _batches("a", t_a, np.arange(3000)) + _batches("b", t_b, rid_b.astype(np.int64)):
        rec.add(b)
    rec.flush(fsync=False)  # not closed: the open segment stays a .part, as after a crash
    assert main(["analyze", str(run), "--json"]) == 0
    out = {o["stream"]: o for o in json.loads(capsys.readouterr().out)}
    assert out["a"]["n_events"] == 3000 and out["a"]["verdict"] == "poisson"
    b = out["b"]
    assert b["verdict"] == "artifact" and b["kind"] == "polling"
    hist = b["artifacts"][0]["evidence"]["read_batch_histogram"]
    assert sum(int(k) * v for k, v in hist.items()) == 3000 and max(int(k) for k in hist) > 3
    rec.close()
