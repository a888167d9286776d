"""The daemon as a subprocess on emulated boards (ptys): sweep + SIGTERM, unplug, SIGKILL recovery, overheat,
brown-out, unwritable state dir, config errors. Timing constants are shrunk through the config."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from daemon.recording import read_table
from tests.polling import wait_for
from tests.system.daemon_child import HOLD
from tests.system.fast_config import fast_config

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]

BASE = fast_config(timing={"silence_timeout_s": 5.0}, http={"enabled": False})

SWEEP = """
[[plans]]
name = "t"
kind = "sweep"
points = [[1.2, 485.0, 1.0], [1.15, 400.0, 1.0], [1.25, 525.0, 1.0]]
settle_s = 0.1
dwell_s = 0.6
"""


def _config(tmp_path: Path, extra: str) -> Path:
    p = tmp_path / "asicrc.toml"
    p.write_text(BASE + extra)
    return p


def _start(cfg: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--state-dir", str(state), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def _status(state: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((state / "status.json").read_text())
        return data
    except (FileNotFoundError, ValueError):
        return None


def _stop_after_second_bring_up(proc: subprocess.Popen[str], state: Path) -> tuple[int, str]:
    """SIGTERM once sim0 came up a second time and recorded nonces after it (bounded wait, no fixed run)."""
    seen: dict[str, int] = {}

    def recovered() -> bool:
        st = _status(state)
        if not st or st["supervisors"].get("sim0", {}).get("bring_ups", 0) < 2:
            return False
        n = int(st["boards"]["sim0"]["nonces"])
        seen.setdefault("at", n)
        return n >= seen["at"] + 150  # ~1.5 s of mining after the second bring-up

    wait_for(recovered, procs=[proc], within_s=60.0, what="sim0 up again with nonces after it")
    proc.send_signal(signal.SIGTERM)
    return _finish(proc)


def _runs(state: Path) -> list[Path]:
    return sorted(p for p in (state / "recordings").iterdir() if p.is_dir())


def _events(state: Path) -> pa.Table:
    return pa.concat_tables([read_table(r) for r in _runs(state)])


def _logs(run: Path) -> list[dict[str, Any]]:
    t: list[dict[str, Any]] = read_table(run, "log").to_pylist()
    for row in t:
        row["payload"] = json.loads(row["payload"])
    return t


def _assert_every_counted_nonce_recorded(state: Path, run: Path) -> dict[str, Any]:
    final = _status(state)
    assert final is not None and final["final"]
    events = read_table(run).to_pandas()
    for name, b in final["boards"].items():
        recorded = int((events["board"] == name).sum())
        assert b["nonces"] > 0
        assert recorded == b["nonces"], (name, recorded, b["nonces"])
        assert final["supervisors"][name]["published_rows"] == b["nonces"]
    assert final["recorder"]["error_dropped_rows"] == 0
    assert final["pipeline"]["subscribers"]["recorder"]["dropped_rows"] == 0
    return final


def test_sweep_then_sigterm_leaves_boards_safe_and_records_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = _start(_config(tmp_path, SWEEP), state, "--simulate", "2")

    def one_point_done() -> bool:
        st = _status(state)
        return bool(st) and all((b["plan"] or {}).get("point", 0) >= 1 for b in st["boards"].values())  # type: ignore[index]

    wait_for(one_point_done, procs=[proc], what="one plan point done on every board")
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 0, err[-3000:]
    assert "safe" in err
    (run,) = _runs(state)
    final = _assert_every_counted_nonce_recorded(state, run)
    assert set(final["boards"]) == {"sim0", "sim1"}
    logs = _logs(run)
    for board in ("sim0", "sim1"):
        last = [r["payload"] for r in logs if r["board"] == board and r["kind"] == "setpoint"][-1]
        assert last["mode"] == "shutdown"
        assert (last["voltage_v"], last["freq_mhz"]) == (1.10, 50.0)  # the configured floors
        prog = json.loads((state / "plans" / f"t.{board}.json").read_text())
        assert prog["done"] >= 1
        s0 = prog["summaries"][0]
        assert s0["freq_mhz"] == 485.0 and s0["nonces"] > 0 and s0["expected_rate_hz"] > 0
    # every event carries the setpoint in force and a serialization-corrected time <= the read time
    ev = read_table(run).to_pandas()
    assert (ev["t_ns"] <= ev["t_host_ns"]).all()
    assert set(ev["point"].unique()) >= {0}
    assert ev["freq_mhz"].max() <= 575.0


def test_pty_unplug_reconnects_and_keeps_recording(tmp_path: Path) -> None:
    state = tmp_path / "state"
    extra = HOLD + '\n[[simulate.faults]]\nat_s = 0.3\nkind = "unplug"\nduration_s = 0.7\n'
    proc = _start(_config(tmp_path, extra), state, "--simulate", "1")
    rc, err = _stop_after_second_bring_up(proc, state)
    assert rc == 0, err[-3000:]
    (run,) = _runs(state)
    final = _assert_every_counted_nonce_recorded(state, run)
    sup = final["supervisors"]["sim0"]
    assert sup["bring_ups"] >= 2
    assert final["boards"]["sim0"]["reconnects"] >= 1
    links = [r["payload"]["link"] for r in _logs(run) if r["kind"] == "state" and "link" in r["payload"]]
    assert "lost" in links and "recovered" in links
    ev = read_table(run).to_pandas().sort_values("t_host_ns")
    gaps = ev["t_host_ns"].diff().dropna()
    assert gaps.max() > 0.5e9  # the outage shows as a gap ...
    gap_at = ev["t_host_ns"].iloc[int(gaps.to_numpy().argmax())]
    assert (ev["t_host_ns"] > gap_at).sum() > 10  # ... with events after it


def test_sigkill_leaves_a_torn_segment_recovered_at_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = _config(tmp_path, HOLD)
    proc = _start(cfg, state, "--simulate", "1")

    def rows_flushed() -> bool:
        st = _status(state)
        return bool(st) and st["recorder"]["rows"] > 200  # type: ignore[index]

    wait_for(rows_flushed, procs=[proc], what="rows flushed")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    before = _status(state)
    assert before is not None
    (run,) = _runs(state)
    assert list(run.glob("events-*.arrows.part")), "expected a torn segment after SIGKILL"
    proc2 = _start(cfg, state, "--simulate", "1", "--duration", "1.0")
    rc, err = _finish(proc2)
    assert rc == 0, err[-3000:]
    assert "recovered" in err
    assert not list(run.glob("*.part"))
    final = _status(state)
    assert final is not None and final["recorder"]["recovered_segments"] >= 1
    # every row the recorder reported written before the kill survived it
    assert read_table(run).num_rows >= before["recorder"]["rows"]


def test_overheat_goes_safe_and_resumes_derated(tmp_path: Path) -> None:
    state = tmp_path / "state"
    extra = HOLD + (
        '\n[simulate]\ntime_scale = 20.0\n[[simulate.faults]]\nat_s = 0.5\nkind = "overheat"\nvalue = 95.0\n'
    )
    proc = _start(_config(tmp_path, extra), state, "--simulate", "1", "--duration", "6")
    rc, err = _finish(proc)
    assert rc == 0, err[-3000:]
    (run,) = _runs(state)
    final = _assert_every_counted_nonce_recorded(state, run)
    sup = final["supervisors"]["sim0"]
    assert sup["trips"].get("chip_overheat", 0) >= 1
    assert sup["caps"] == pytest.approx([1.1, 385.0])  # 100 mV and 100 MHz below the 1.2 V / 485 MHz hold
    sps = [r["payload"] for r in _logs(run) if r["kind"] == "setpoint"]
    hot = [i for i, p in enumerate(sps) if p["mode"] == "overheat"]
    assert hot, "no setpoint written in the overheat state"
    assert sps[hot[0]]["voltage_v"] == 0.0 and sps[hot[0]]["freq_mhz"] == 50.0
    resumed = [p for p in sps[hot[-1] + 1 :] if p["mode"] == "normal"]
    assert resumed and max(p["freq_mhz"] for p in resumed) <= 385.0
    assert max(p["freq_mhz"] for p in resumed) > 300.0
    assert sup["bring_ups"] >= 2  # reset was held: the chain is brought up again


def test_brownout_goes_safe_and_reinitialises(tmp_path: Path) -> None:
    state = tmp_path / "state"
    extra = HOLD + '\n[[simulate.faults]]\nat_s = 0.3\nkind = "brownout"\nvalue = 4.2\nduration_s = 0.5\n'
    proc = _start(_config(tmp_path, extra), state, "--simulate", "1")
    rc, err = _stop_after_second_bring_up(proc, state)
    assert rc == 0, err[-3000:]
    (run,) = _runs(state)
    final = _assert_every_counted_nonce_recorded(state, run)
    sup = final["supervisors"]["sim0"]
    assert sup["trips"].get("brownout", 0) >= 1
    assert sup["bring_ups"] >= 2
    sps = [r["payload"] for r in _logs(run) if r["kind"] == "setpoint"]
    low = [i for i, p in enumerate(sps) if p["mode"] == "brownout"]
    assert low and sps[low[0]]["freq_mhz"] == 50.0
    assert any(p["mode"] == "normal" and p["freq_mhz"] == 485.0 for p in sps[low[-1] + 1 :])
    ev = read_table(run).to_pandas()
    assert sup["reads"] > 0
    t_fault = ev["t_host_ns"].min() + 1.2e9
    assert (ev["t_host_ns"] > t_fault + 1.0e9).sum() > 10  # mining again after the recovery


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unwritable_state_dir_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    state = blocker / "state"  # cannot be created, even as root
    port = _free_port()
    proc = _start(
        _config(tmp_path, HOLD), state, "--simulate", "1", "--duration", "3", "--http", f"127.0.0.1:{port}"
    )
    metrics = ""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                metrics = r.read().decode()
            if "asicrc_recorder_up 0.0" in metrics:
                break
        except OSError:
            pass
        time.sleep(0.1)
    rc, err = _finish(proc)
    assert rc == 0, err[-3000:]
    assert f"state directory {state} is not writable" in err
    assert "asicrc_recorder_up 0.0" in metrics


def test_config_errors_and_no_boards_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[safety]\nfreq_max_mhz = 5000\n[[boards]]\ndata_port = '/dev/null'\n")
    assert main(["run", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "safety.freq_max_mhz" in err and "5000" in err and "1200" in err
    bad.write_text("[http]\nprot = 1\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "http.prot" in capsys.readouterr().err
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert main(["run", "--config", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no boards configured" in err and "--simulate" in err
