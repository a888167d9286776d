"""A latched regulator is a named board fault, not a lost link (daemon subprocess, emulated boards on ptys).

Four emulated BM1366 at 1.20 V / 485 MHz draw ~35 A from the single-phase TPS546, configured as ESP-Miner
does (IOUT_OC_FAULT 30 A, latch-off): the regulator switches its output off. The daemon reads STATUS_WORD with
every telemetry, names the fault (``regulator_overcurrent``), goes to the safe state (output off, reset held)
and writes no setpoint after it; the reason shows in ``/status``, the trips metric and the recording. The same
for a latch injected on one chip (fault ``vr_latch``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.system.daemon_child import HOLD, Child, _logs, _nonces

pytestmark = pytest.mark.system


REASON = "regulator_overcurrent"


def _board(c: Child) -> dict[str, Any]:
    b: dict[str, Any] = c.status()["boards"]["sim0"]
    return b


def _assert_fault_state(c: Child, t_trip: float) -> None:
    b = _board(c)
    assert b["status"] == f"fault: {REASON}"
    assert b["trips"] == {REASON: 1}
    assert b["setpoint"]["voltage_v"] == 0.0
    assert c.metric("asicrc_safety_trips_total", board="sim0", reason=REASON) == 1
    assert c.metric("asicrc_reconnects_total") == 0  # not taken for a lost link or silence
    print(f"MEASURED regulator fault named {t_trip:.2f} s after start/injection (telemetry every 0.1 s)")


def _assert_recording(c: Child) -> None:
    err = c.stop()
    assert REASON in err
    (run,) = c.runs()
    logs = _logs(run)
    trips = [i for i, r in enumerate(logs) if r["kind"] == "safety" and r["payload"].get("trip") == REASON]
    assert len(trips) == 1
    assert "output_current_a" in logs[trips[0]]["payload"]["telemetry"]
    after = [r["payload"] for r in logs[trips[0] :] if r["kind"] == "setpoint"]
    assert after and all(p["voltage_v"] == 0.0 for p in after)  # nothing switched on again, not even at exit
    assert any(p["mode"] == "fault" for p in after)
    links = [r["payload"].get("link") for r in logs if r["kind"] == "state"]
    assert "lost" not in links
    assert c.final()["boards"]["sim0"]["status"] == "stopped"


def test_four_chips_at_the_high_point_latch_the_regulator_and_the_daemon_names_it(
    child_factory: Callable[..., Child],
) -> None:
    t0 = time.monotonic()
    c = child_factory(HOLD + "\n[simulate]\nchips = 4\n")
    c.wait_for(lambda: _board(c)["status"].startswith("fault"), timeout_s=60)
    t_trip = time.monotonic() - t0
    _assert_fault_state(c, t_trip)
    time.sleep(1.0)  # ten telemetry periods later: still off, still the same fault, still no reconnect
    _assert_fault_state(c, t_trip)
    _assert_recording(c)
    (run,) = c.runs()
    warnings = [r["payload"]["warning"] for r in _logs(run) if "warning" in r["payload"]]
    assert len(warnings) == 1 and "IOUT_OC_WARN 25 A" in warnings[0]  # the run-time current check


def test_an_injected_latch_is_the_same_named_fault(child_factory: Callable[..., Child]) -> None:
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 20)
    assert _board(c)["status"] == "connected"
    t0 = time.monotonic()
    c.inject({"kind": "vr_latch"})
    c.wait_for(lambda: _board(c)["status"].startswith("fault"))
    _assert_fault_state(c, time.monotonic() - t0)
    _assert_recording(c)
