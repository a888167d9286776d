"""Bring-up failures (daemon/bringup.py): reasons, one log line per change, health after the start-up window,
the metric, the start-up window wait; and what each board will do (daemon/intent.py)."""

from __future__ import annotations

import logging
import tomllib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.bringup import REASONS, BringUpWatch, classify, wait_first_board_up
from daemon.config import Config, parse_config
from daemon.intent import board_intents, expected_rate_hz
from daemon.metrics import make_registry, render
from daemon.state import BoardState, DaemonState
from drivers.chain import ChainError
from drivers.i2c import I2CError
from drivers.transport import TransportError


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns

    async def sleep(self, s: float) -> None:
        self.ns += round(s * 1e9)


def test_reasons_are_a_closed_set_from_the_stage_and_the_error() -> None:
    assert classify("open", TransportError("cannot open /dev/null")) == "open"
    assert classify("control", TransportError("fan not set")) == "control"
    no_chip = ChainError("no chip answered the chip-id read (power, reset, wiring or baud?)")
    assert classify("chain", no_chip) == "no_chip"
    assert classify("chain", ChainError("found 2 chips, expected 4")) == "chip_count"
    assert classify("chain", ChainError("no reply from chip 0 (addr 0x00) reg 0x00")) == "chain"
    assert classify("chain", TransportError("write failed")) == "link"
    assert classify("chain", I2CError("bitaxe-raw error 0x10 (timeout) on page 0x06 cmd 0x00")) == "control"
    assert classify("chain", TimeoutError("bitaxe-raw: no reply to page 0x06 cmd 0x00")) == "control"
    assert {"open", "control", "no_chip", "chip_count", "chain", "link"} == set(REASONS)


def test_watch_counts_every_attempt_and_logs_once_per_change(caplog: pytest.LogCaptureFixture) -> None:
    st = BoardState("b0")
    w = BringUpWatch(st, now_ns=5)
    assert st.not_up_since_ns == 5 and not w.failing
    with caplog.at_level(logging.INFO, logger="daemon.bringup"):
        for _ in range(3):
            w.failed("open", TransportError("cannot open /dev/x: No such file or directory"))
        for _ in range(4):
            w.failed("chain", ChainError("no chip answered the chip-id read"))
        for i in range(2):  # only a number (the request id) differs: one change
            w.failed("control", TimeoutError(f"bitaxe-raw: no reply to page 0x05 cmd 0x20 (id {i}) in 0.5 s"))
        w.failed("open", TransportError("cannot open /dev/x: No such file or directory"))
        assert w.failing
        w.up()
    msgs = [r.getMessage() for r in caplog.records]
    warn = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warn) == 4  # open, no_chip, control, open again: the changes, not the 10 attempts
    assert "board b0: not up (open): cannot open /dev/x" in msgs[0]
    assert "board b0: not up (no_chip): no chip answered" in msgs[1]
    assert "board b0: not up (control): bitaxe-raw: no reply to page 0x05 cmd 0x20 (id 0)" in msgs[2]
    assert msgs[-1] == "board b0: came up after 10 failed attempt(s)"
    assert st.bringup_failures == {"open": 4, "no_chip": 4, "control": 2}
    assert st.ever_up and st.bringup_error is None and st.not_up_since_ns is None and not w.failing
    status = st.to_status()["bringup"]
    assert status == {"ever_up": True, "error": None, "failures": {"control": 2, "no_chip": 4, "open": 4}}


def test_health_fails_only_for_a_board_not_up_after_the_window() -> None:
    clock = Clock()
    state = DaemonState(clock=clock, startup_timeout_s=10.0)
    good = state.add_board("good")
    bad = state.add_board("bad")
    wg, wb = BringUpWatch(good, now_ns=clock()), BringUpWatch(bad, now_ns=clock())
    wb.failed("chain", ChainError("no chip answered the chip-id read"))
    clock.ns += 9_000_000_000
    assert state.health() == (True, "ok")  # inside the window
    wg.up()
    clock.ns += 2_000_000_000
    ok, reason = state.health()
    assert not ok
    assert reason == "board bad not up after 11 s (no_chip: no chip answered the chip-id read)"
    assert state.to_status()["healthy"] is False
    wb.up()
    assert state.health() == (True, "ok")
    state.startup_timeout_s = 0.0  # no bound: never unhealthy for this
    other = state.add_board("other")
    BringUpWatch(other, now_ns=clock())
    clock.ns += 10**15
    assert state.health() == (True, "ok")


def test_bringup_failures_metric_has_every_reason_per_board() -> None:
    state = DaemonState()
    b = state.add_board("b0")
    w = BringUpWatch(b, now_ns=0)
    w.failed("open", TransportError("x"))
    w.failed("open", TransportError("x"))
    body, _ = render(make_registry(state))
    samples = {
        s.labels["reason"]: s.value
        for fam in text_string_to_metric_families(body.decode())
        if fam.name == "asicrc_bringup_failures"
        for s in fam.samples
        if s.name.endswith("_total")
    }
    assert samples == {r: (2.0 if r == "open" else 0.0) for r in REASONS}


async def test_start_window_returns_none_once_a_board_is_up_else_the_reason() -> None:
    clock = Clock()
    a, b = BoardState("a"), BoardState("b")
    wa, wb = BringUpWatch(a, now_ns=clock()), BringUpWatch(b, now_ns=clock())
    wa.failed("open", TransportError("cannot open /dev/a"))
    reason = await wait_first_board_up([a, b], 1.0, clock, clock.sleep, poll_s=0.1)
    assert reason == (
        "no board came up within 1 s (timing.startup_timeout_s): a: open: cannot open /dev/a; "
        "b: no attempt finished"
    )
    assert clock.ns >= 2_000_000_000
    wb.up()
    assert await wait_first_board_up([a, b], 1.0, clock, clock.sleep) is None


def _cfg(extra: str) -> Config:
    text = 'state_dir = "x"\n[[boards]]\nname = "b0"\ndata_port = "/dev/x"\nchips = 2\n' + extra
    return parse_config(tomllib.loads(text))


def test_intent_says_why_a_board_without_a_plan_records_almost_nothing() -> None:
    cfg = _cfg('[mqtt]\nenabled = true\nhost = "127.0.0.1"\n')
    (line,) = board_intents(cfg, cfg.boards)
    rate = expected_rate_hz(2, 50.0, 256.0)
    assert rate == pytest.approx(2 * 50e6 * 894 / (256 * 2**32))
    assert line.startswith("board b0: no plan for it in [[plans]]: it holds the safe floor 1.10 V 50 MHz")
    assert f"about {rate:.2g} nonces/s" in line
    assert "MQTT commands are off (no [mqtt] token)" in line
    cfg = _cfg('[mqtt]\nenabled = true\nhost = "127.0.0.1"\ntoken = "s3cret"\n')
    (line,) = board_intents(cfg, cfg.boards)
    assert "until an MQTT command (set_setpoint or start_plan on cmd)" in line and "s3cret" not in line
    cfg = _cfg("")
    (line,) = board_intents(cfg, cfg.boards)
    assert line.endswith('add a [[plans]] entry for it (e.g. kind = "hold")')


def test_intent_lists_the_plans_of_each_board_in_order() -> None:
    plans = """
[[plans]]
name = "s"
kind = "sweep"
voltage_v = [1.15, 1.2]
freq_mhz = [400.0, 485.0, 500.0]
ticket_diff = [1.0]
settle_s = 1.0
dwell_s = 4.0
[[plans]]
name = "h"
kind = "hold"
boards = ["b0"]
hold_voltage_v = 1.2
hold_freq_mhz = 485.0
hold_ticket_diff = 64.0
[[plans]]
name = "other"
kind = "hold"
"""
    cfg = _cfg(plans)
    lines = board_intents(cfg, cfg.boards)
    assert lines == [
        "board b0: will run s (sweep, 6 point(s), >= 30 s), then h (hold 1.20 V 485 MHz ticket 64, until"
        " stopped), then other (hold 1.20 V 485 MHz ticket 256, until stopped);"
        " then it holds the last setpoint"
    ]
