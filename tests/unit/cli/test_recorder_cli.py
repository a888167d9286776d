"""``asicrc record info|convert|recover`` on a recording written by the recorder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest

from daemon.cli import main
from daemon.events import make_event_batch, make_log_batch
from daemon.recorder import Recorder, RecorderPolicy


def make_recording(run: Path) -> None:
    """Two boards, 3 plan points, 2 segments; board a has 3 chips, b has 2; every 4th row invalid."""
    rec = Recorder(run, boards=["a", "b"], policy=RecorderPolicy(segment_bytes=2048))
    t = 0
    for point in range(3):
        for board, chips in (("a", 3), ("b", 2)):
            n = 40
            seq = np.arange(t, t + n, dtype=np.int64)
            rec.add(
                make_event_batch(
                    board, t_host_ns=seq * 1000, t_ns=seq * 1000, chip=seq % chips, core=0, small_core=0,
                    job_id=0, nonce=seq, valid=seq % 4 != 0, voltage_v=1.2, freq_mhz=485.0, ticket_diff=1.0,
                    read_id=seq, point=point,
                )
            )  # fmt: skip
            t += n
        rec.add(make_log_batch(point, "a", "plan", {"point": point}))
        rec.flush()
    rec.close()


def test_info_json_is_one_object_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_recording(tmp_path / "run")
    assert main(["record", "info", str(tmp_path / "run"), "--json"]) == 0
    out = capsys.readouterr().out
    info = json.loads(out)  # the whole stdout is one JSON object
    assert info["rows"] == 240 and info["invalid"] == 60
    assert info["boards"]["a"] == {"rows": 120, "invalid": 30, "chips_seen": 3, "max_chip": 2}
    assert info["boards"]["b"]["chips_seen"] == 2
    assert info["points"] == [0, 1, 2]
    assert info["span_s"] == pytest.approx(239 * 1000 / 1e9)
    assert info["segments"]["events"] >= 2 and info["segments"]["log"] == 1
    assert info["recovered_segments"] == 0 and info["unrecovered_parts"] == []
    assert info["log_rows"] == {"plan": 3}


def test_info_text_and_unrecovered_part(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    make_recording(run)
    rec = Recorder(run)
    rec.open()
    rec.add(
        make_event_batch(
            "a", t_host_ns=np.arange(5), t_ns=np.arange(5), chip=0, core=0, small_core=0, job_id=0, nonce=0,
            valid=True, voltage_v=1.0, freq_mhz=400.0, ticket_diff=1.0, read_id=0,
        )
    )  # fmt: skip
    rec.flush()  # left open: a .part, as after a crash
    assert main(["record", "info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "rows        240 (60 invalid)" in out
    assert "UNRECOVERED 1 .part" in out and "5 readable rows" in out
    assert main(["record", "recover", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recovered"][0]["rows"] == 5
    assert main(["record", "info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["rows"] == 245 and info["recovered_segments"] == 1


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_convert_writes_every_row(tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_recording(tmp_path / "run")
    out = tmp_path / f"events.{fmt}"
    assert main(["record", "convert", str(tmp_path / "run"), "--to", fmt, str(out)]) == 0
    assert capsys.readouterr().out == ""  # progress on stderr only
    if fmt == "parquet":
        df = pq.read_table(out).to_pandas()
        assert pl.read_parquet(out).height == 240
    else:
        df = pd.read_csv(out)
    assert len(df) == 240 and df["t_ns"].tolist() == [i * 1000 for i in range(240)]
    assert df.groupby("board", observed=True).size().to_dict() == {"a": 120, "b": 120}
    assert int((~df["valid"].astype(bool)).sum()) == 60


def test_convert_log_table(tmp_path: Path) -> None:
    make_recording(tmp_path / "run")
    out = tmp_path / "log.csv"
    assert main(["record", "convert", str(tmp_path / "run"), "--to", "csv", "--table", "log", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["kind"].tolist() == ["plan"] * 3 and json.loads(df["payload"][2]) == {"point": 2}


def test_not_a_recording_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_recording(tmp_path / "recordings" / "r1")
    assert main(["record", "info", str(tmp_path / "recordings")]) == 2
    err = capsys.readouterr().err
    assert "not a recording" in err and "r1" in err
    assert main(["record", "info", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_convert_across_segments_with_different_board_dictionaries(tmp_path: Path, fmt: str) -> None:
    rec = Recorder(tmp_path / "run", boards=["a"])
    for board, start in (("a", 0), ("z", 5), ("a", 10)):  # "z" rotates to a segment with dictionary [a, z]
        t = np.arange(start, start + 5, dtype=np.int64)
        rec.add(
            make_event_batch(
                board, t_host_ns=t, t_ns=t, chip=0, core=0, small_core=0, job_id=0, nonce=0, valid=True,
                voltage_v=1.0, freq_mhz=400.0, ticket_diff=1.0, read_id=0,
            )
        )  # fmt: skip
        rec.flush()
    rec.close()
    out = tmp_path / f"o.{fmt}"
    assert main(["record", "convert", str(tmp_path / "run"), "--to", fmt, str(out)]) == 0
    df = pq.read_table(out).to_pandas() if fmt == "parquet" else pd.read_csv(out)
    assert df["board"].astype(str).tolist() == ["a"] * 5 + ["z"] * 5 + ["a"] * 5
