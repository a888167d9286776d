"""``asicrc analyze``: recordings written here with pyarrow to docs/recording-format.md, the --timestamps
path, errors, JSON and the HTML report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from daemon.analysis import read_segment
from daemon.cli import main
from reservoir.timing import synth

SCHEMA = pa.schema(
    [
        ("t_host_ns", pa.int64()),
        ("t_ns", pa.int64()),
        ("board", pa.dictionary(pa.int32(), pa.string())),
        ("chip", pa.int16()),
        ("core", pa.int16()),
        ("small_core", pa.int8()),
        ("job_id", pa.uint8()),
        ("nonce", pa.uint32()),
        ("version_bits", pa.uint16()),
        ("share_diff", pa.float64()),
        ("valid", pa.bool_()),
        ("voltage_v", pa.float32()),
        ("freq_mhz", pa.float32()),
        ("ticket_diff", pa.float32()),
        ("read_id", pa.int64()),
        ("point", pa.int32()),
    ]
)


def _table(t_ns: np.ndarray, board: str, chip: np.ndarray, volt: np.ndarray, freq: np.ndarray) -> pa.Table:
    n = len(t_ns)
    rng = np.random.default_rng(n)
    return pa.table(
        {
            "t_host_ns": pa.array(t_ns, pa.int64()),
            "t_ns": pa.array(t_ns, pa.int64()),
            "board": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([board])),
            "chip": pa.array(chip.astype(np.int16)),
            "core": pa.array(rng.integers(0, 112, n).astype(np.int16)),
            "small_core": pa.array(rng.integers(0, 8, n).astype(np.int8)),
            "job_id": pa.array(np.zeros(n, np.uint8)),
            "nonce": pa.array(rng.integers(0, 2**32, n).astype(np.uint32)),
            "version_bits": pa.array(np.zeros(n, np.uint16)),
            "share_diff": pa.array(np.full(n, 300.0)),
            "valid": pa.array(rng.uniform(size=n) > 0.02),
            "voltage_v": pa.array(volt.astype(np.float32)),
            "freq_mhz": pa.array(freq.astype(np.float32)),
            "ticket_diff": pa.array(np.full(n, 256.0, np.float32)),
            "read_id": pa.array(np.arange(n, dtype=np.int64)),
            "point": pa.array(np.full(n, -1, np.int32)),
        },
        schema=SCHEMA,
    )


def _write(path: Path, table: pa.Table, batch_rows: int = 500) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as w:
        for b in table.to_batches(max_chunksize=batch_rows):
            w.write_batch(b)


def make_recording(root: Path, n: int = 3000, torn_part: bool = True) -> Path:
    """Two boards; board 'a' has 2 chips, 4 operating points (2 V x 2 f) in sequence; a torn .part segment."""
    rng = np.random.default_rng(11)
    rec = root / "rec"
    rec.mkdir()
    t = synth.poisson(n, 5.0, rng)
    chip = rng.integers(0, 2, n)
    pts = np.minimum(np.arange(n) * 4 // n, 3)
    volt = np.where(pts < 2, 1.15, 1.2)
    freq = np.where(pts % 2 == 0, 485.0, 525.0)
    tab = _table(t, "a", chip, volt, freq)
    _write(rec / "events-000000.arrows", tab.slice(0, n // 2))
    if torn_part:
        part = rec / "events-000001.arrows.part"
        _write(part, tab.slice(n // 2))
        data = part.read_bytes()
        part.write_bytes(data[: len(data) - 100])  # torn tail: the last batch is incomplete
    else:
        _write(rec / "events-000001.arrows", tab.slice(n // 2))
    tb = synth.grid(synth.poisson(2000, 5.0, rng), 0.016, rng)
    _write(
        rec / "events-000002.arrows",
        _table(tb, "b", np.zeros(2000), np.full(2000, 1.2), np.full(2000, 485.0)),
    )
    (rec / "meta.json").write_text(json.dumps({"run_id": "test"}))
    return rec


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_torn_part_keeps_whole_batches(tmp_path: Path) -> None:
    rec = make_recording(tmp_path)
    t = read_segment(rec / "events-000001.arrows.part")
    assert t is not None
    assert t.num_rows == 1000  # 1500 rows in 3 batches of 500; the torn last batch is dropped


def test_recording_by_board_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _json(capsys, ["analyze", str(make_recording(tmp_path)), "--json"])
    assert [o["stream"] for o in out] == ["a", "b"]
    a, b = out
    assert a["n_events"] == 2500  # 3000 minus the torn batch of 500
    for key in ("rate_hz", "cv", "cv_null95", "fano", "ks_p", "verdict", "kind", "artifacts"):
        assert key in a
    assert a["verdict"] == "poisson"
    assert 0.9 < a["cv"] < 1.1 and a["cv_null95"][0] < 1 < a["cv_null95"][1]
    assert b["verdict"] == "artifact"
    assert b["artifacts"][0]["name"] == "timestamp-quantum"
    assert b["artifacts"][0]["evidence"]["quantum_ns"] == 16_000_000
    expected = 2 * 485e6 * 894 / (256 * 2**32)  # two chips on board a
    assert a["expected_rate_hz"] == pytest.approx(expected, rel=0.05)
    assert 0 < a["invalid_fraction"] < 0.1


def test_recording_by_chip_and_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = make_recording(tmp_path, torn_part=False)
    chips = _json(capsys, ["analyze", str(rec), "--by", "chip", "--json"])
    assert {o["stream"] for o in chips} == {"a/chip0", "a/chip1", "b/chip0"}
    # a chip's events interleave with the other chip's: one stream over the whole span, at half the rate
    a0 = next(o for o in chips if o["stream"] == "a/chip0")
    assert a0["n_events"] > 1000 and a0["duration_s"] > 0.9 * 3000 / 5.0
    pts = _json(capsys, ["analyze", str(rec), "--by", "point", "--json"])
    names = {o["stream"] for o in pts}
    assert "a@1.15V/485MHz" in names and len(names) == 5
    assert sum(o["n_events"] for o in pts if o["stream"].startswith("a@")) == 3000


def test_human_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(make_recording(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "timestamp-quantum" in out and "poisson" in out


def test_timestamps_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ts.txt"
    t = synth.polling(
        synth.poisson(3000, 5.0, np.random.default_rng(1)), (1.0, 2.0), np.random.default_rng(2)
    )
    f.write_text("# polled\n" + "\n".join(str(int(v)) for v in t) + "\n\n")
    out = _json(capsys, ["analyze", "--timestamps", str(f), "--json"])
    assert isinstance(out, dict)
    assert out["n_events"] == 3000
    assert out["verdict"] == "artifact" and out["kind"] == "polling"
    assert out["artifacts"][0]["evidence"]["mean_batch_size"] > 2


def test_bad_line_names_line_number(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("100\n200\n3.5e9\n")
    assert main(["analyze", "--timestamps", str(f)]) == 2  # input error (README, "Exit codes")
    err = capsys.readouterr().err
    assert "bad.txt:3" in err and "3.5e9" in err


def test_too_few_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "few.txt"
    f.write_text("\n".join(str(i * 1000) for i in range(12)))
    assert main(["analyze", "--timestamps", str(f), "--json"]) == 2
    captured = capsys.readouterr()
    assert "12 events" in captured.err and "at least 30" in captured.err
    assert captured.out == ""


def test_missing_directory_and_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(tmp_path / "nope")]) == 2
    assert "no such recording directory" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path)]) == 2
    assert "no events-*.arrows" in capsys.readouterr().err
    assert main(["analyze"]) == 2
    assert "RECORDING_DIR or --timestamps" in capsys.readouterr().err


def test_report_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = make_recording(tmp_path, torn_part=False)
    rep = tmp_path / "report"
    assert main(["analyze", str(rec), "--by", "point", "--report", str(rep), "--no-mc"]) == 0
    html = (rep / "index.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "a@1.15V/485MHz" in html and "no power data" in html
    pngs = sorted(rep.glob("*.png"))
    names = {p.name for p in pngs}
    maps = {f"heat_a_{k}.png" for k in ("cv", "fano", "invalid_fraction", "rate_vs_expected")}
    assert maps <= names and not any(n.startswith("heat_b_") for n in names)  # b: one point, no map
    assert any(n.endswith("_hist.png") for n in names) and any(n.endswith("_qq.png") for n in names)
    assert any(n.endswith("_fano.png") for n in names)
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"src='{p.name}'" in html


@pytest.mark.system
def test_subprocess_json(tmp_path: Path) -> None:
    f = tmp_path / "ts.txt"
    f.write_text("\n".join(str(int(v)) for v in synth.poisson(500, 5.0, np.random.default_rng(3))))
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", "analyze", "--timestamps", str(f), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["n_events"] == 500 and obj["verdict"] in ("poisson", "non-poisson", "artifact")


def test_no_mc_json_is_strict_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ts.txt"
    f.write_text("\n".join(str(int(v)) for v in synth.poisson(300, 5.0, np.random.default_rng(4))))
    assert main(["analyze", "--timestamps", str(f), "--json", "--no-mc"]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    obj = json.loads(out)
    assert obj["ks_p"] is None and obj["cv_null95"] == [None, None] and obj["fano"]


def test_report_by_board_still_maps_operating_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = make_recording(tmp_path, torn_part=False)
    rep = tmp_path / "report"
    assert main(["analyze", str(rec), "--report", str(rep), "--no-mc"]) == 0
    assert (rep / "heat_a_rate_vs_expected.png").read_bytes()[:4] == b"\x89PNG"
    assert "heat_a_cv.png" in (rep / "index.html").read_text()


def test_part_next_to_its_finished_segment_is_not_counted_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = make_recording(tmp_path, torn_part=False)
    (rec / "events-000001.arrows.part").write_bytes((rec / "events-000001.arrows").read_bytes())
    out = _json(capsys, ["analyze", str(rec), "--json", "--no-mc"])
    assert out[0]["n_events"] == 3000


def test_clock_host_sees_the_host_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(12)
    t = synth.poisson(2000, 5.0, rng)
    tab = _table(t, "a", np.zeros(2000), np.full(2000, 1.2), np.full(2000, 485.0))
    host = synth.grid(t, 0.016, rng)  # what the host read clock saw through a 16 ms latency timer
    tab = tab.set_column(0, "t_host_ns", pa.array(host, pa.int64()))
    rec = tmp_path / "rec"
    rec.mkdir()
    _write(rec / "events-000000.arrows", tab)
    # a format 1 recording: its t_ns (here the exact times) is read as t_wire_ns, t_ns is the read time
    assert _json(capsys, ["analyze", str(rec), "--json", "--clock", "wire"])["verdict"] == "poisson"
    assert _json(capsys, ["analyze", str(rec), "--json", "--clock", "corrected"])["verdict"] == "poisson"
    for argv in ([], ["--clock", "host"]):
        host_res = _json(capsys, ["analyze", str(rec), "--json", *argv])
        assert host_res["verdict"] == "artifact" and host_res["kind"] == "timestamp-quantum"
