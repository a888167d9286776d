"""Board snapshots: one frozen view per board built from the board state, its session's link counters and
its safety envelope; ``/status``, ``status.json``, the metrics and the status line all read it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from daemon.config import BoardConfig, SafetyLimits, TimingConfig
from daemon.events import Pipeline, make_event_batch
from daemon.metrics import make_registry, render
from daemon.safety import Setpoint, Source
from daemon.state import DaemonState, PlanProgress
from daemon.status_report import status_file_body
from daemon.supervisor import BoardSupervisor


def _daemon_state() -> tuple[DaemonState, BoardSupervisor]:
    state = DaemonState(version="1.2.3", host="h")
    st = state.add_board("g0", "gamma", 2, link="/dev/ttyX")
    board = BoardConfig(name="g0", kind="gamma", data_port="/dev/null", chips=2, safety=SafetyLimits())
    sup = BoardSupervisor(board, TimingConfig(), Pipeline(), st, lambda: NotImplemented)
    state.attach_session("g0", sup)
    state.add_board("g1", "gamma", 1)  # no session attached
    return state, sup


def test_snapshot_carries_envelope_and_link_counters_of_the_attached_session() -> None:
    state, sup = _daemon_state()
    lim = SafetyLimits()
    d = sup.request(Setpoint(lim.core_voltage_max_v, lim.freq_max_mhz + 100.0, 256.0), -1, Source.COMMAND)
    assert d.outcome == "clamped"
    sup.counters.crc_errors = 3
    snaps = state.snapshots()
    g0, g1 = snaps["g0"], snaps["g1"]
    assert g0.envelope is not None and sum(g0.envelope.clamps.values()) == 1
    assert g0.envelope.caps == sup.envelope.caps
    assert g0.link_counters is not None and g0.link_counters["crc_errors"] == 3
    assert g1.envelope is None and g1.session_status() is None
    body = status_file_body(state, snaps, final=True)
    assert body["final"] is True and list(body["supervisors"]) == ["g0"]
    sess = body["supervisors"]["g0"]
    assert sess["crc_errors"] == 3 and sess["clamps"] == dict(sup.envelope.clamps)
    assert sess["caps"] == list(sup.envelope.caps)
    assert body["boards"] == state.to_status()["boards"]


def test_snapshot_is_frozen_and_does_not_follow_later_updates() -> None:
    state, _ = _daemon_state()
    st = state.boards["g0"]
    st.plan = PlanProgress("p", "sweep", 1, 4, 9.0)
    t = np.array([1_000, 2_000, 3_000], np.int64)
    batch = make_event_batch(
        "g0",
        t_host_ns=t,
        t_ns=t,
        chip=np.array([0, 1, 1]),
        core=0,
        small_core=0,
        job_id=np.full(3, 24, np.uint8),
        nonce=np.arange(3, dtype=np.uint32),
        valid=np.array([True, True, False]),
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=256.0,
        read_id=np.arange(3),
    )
    state.update_from_events("g0", batch)
    snap = st.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.status = "failed"  # type: ignore[misc]
    state.update_from_events("g0", batch)
    st.plan.i = 3
    assert snap.nonces.tolist() == [1, 2] and snap.nonces_total == 3 and snap.invalid_total == 1
    assert snap.plan is not None and snap.plan.i == 1
    assert st.nonces_total == 6


def test_status_line_and_metrics_read_the_same_snapshot_values() -> None:
    state, _ = _daemon_state()
    st = state.boards["g0"]
    st.status, st.chip_temp_c = "connected", 55.5
    st.set_setpoint(1.2, 485.0, 512.0)
    st.plan = PlanProgress("p", "sweep", 2, 5)
    line = st.snapshot().status_line()
    assert line == (
        "g0: connected 1.20 V 485 MHz diff 512 | 0 nonces, 0.0/s, invalid 0 | 55.5 C | plan p 2/5"
    )
    st.connected, st.bringup_error, st.bringup_failures = False, "no chips", {"chain": 2}
    assert st.snapshot().status_line() == "g0: not up, 2 failed attempt(s): no chips"
    body, _ = render(make_registry(state))
    text = body.decode()
    assert 'asicrc_frequency_hertz{board="g0"} 4.85e+08' in text
    assert 'asicrc_chip_temperature_celsius{board="g0"} 55.5' in text
