"""Observability gaps found by the reliability work: safety-trip and MQTT bridge metrics, fan readings, the
systemd watchdog pinging on event-loop liveness while board health goes to STATUS= and /healthz.

No real sleeps: emulated I2C devices in-process, injected sleeps, a zero watchdog interval.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.app import Daemon
from daemon.board_control import FanReading, NullControl, PartsControl, fan_reading
from daemon.config import BoardConfig, SafetyLimits, TimingConfig, default_config
from daemon.events import Pipeline
from daemon.metrics import make_registry, render
from daemon.mqtt import MqttStats
from daemon.notify import Notifier, watchdog_loop
from daemon.safety import Telemetry
from daemon.state import BoardState, DaemonState
from daemon.supervisor import BoardSupervisor
from drivers.parts.board import board_power
from drivers.parts.emc2101 import percent_for_duty
from simulator.chain import ChainCore
from simulator.i2c_devices import FAN_MAX_RPM, board_devices
from tests.conftest import require_binary

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(state: DaemonState) -> tuple[bytes, Samples]:
    body, _ = render(make_registry(state))
    out: Samples = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return body, out


def _state() -> DaemonState:
    state = DaemonState(version="1.0")
    a, b = state.add_board("a", "gamma", 1), state.add_board("b", "gamma", 1)
    a.set_trips({"brownout": 2, "chip_overheat": 1, "overpower": 0})
    b.fan_duty, b.fan_rpm = 0.5, 3000.0
    state.mqtt = MqttStats(
        published=7, dropped=3, reconnects=2, connected=True, commands_accepted=4, commands_refused=5
    )
    return state


# ------------------------------------------------------------------------------------------ 6. metrics


def test_safety_trips_are_counted_by_board_and_reason() -> None:
    _, m = scrape(_state())
    trips = m["asicrc_safety_trips_total"]
    assert trips == {
        (("board", "a"), ("reason", "brownout")): 2.0,
        (("board", "a"), ("reason", "chip_overheat")): 1.0,
    }  # a zero count is not a sample; board b has none


def test_mqtt_bridge_metrics_read_the_bridge_counters() -> None:
    state = _state()
    _, m = scrape(state)
    assert m["asicrc_mqtt_connected"] == {(): 1.0}
    assert m["asicrc_mqtt_reconnects_total"] == {(): 2.0}
    assert m["asicrc_mqtt_published_messages_total"] == {(): 7.0}
    assert m["asicrc_mqtt_dropped_messages_total"] == {(): 3.0}
    assert m["asicrc_mqtt_commands_total"] == {(("result", "accepted"),): 4.0, (("result", "refused"),): 5.0}
    assert state.mqtt is not None
    state.mqtt.connected, state.mqtt.commands_refused = False, 6  # read at scrape time, not copied
    _, m = scrape(state)
    assert m["asicrc_mqtt_connected"] == {(): 0.0}
    assert m["asicrc_mqtt_commands_total"][(("result", "refused"),)] == 6.0


def test_mqtt_families_are_absent_without_a_bridge() -> None:
    state = _state()
    state.mqtt = None
    _, m = scrape(state)
    assert not [n for n in m if n.startswith("asicrc_mqtt_")]


def test_dropped_log_rows_have_their_own_counter() -> None:
    state = _state()
    state.recorder.error_dropped_rows, state.recorder.error_dropped_log_rows = 11, 4
    _, m = scrape(state)
    assert m["asicrc_recorder_error_dropped_rows_total"] == {(): 11.0}
    assert m["asicrc_recorder_error_dropped_log_rows_total"] == {(): 4.0}


def test_fan_gauges_carry_the_board_fan_values() -> None:
    _, m = scrape(_state())
    assert m["asicrc_fan_duty_ratio"] == {(("board", "b"),): 0.5}
    assert m["asicrc_fan_speed_hertz"] == {(("board", "b"),): 50.0}


def test_new_metrics_keep_promtool_clean() -> None:
    promtool = require_binary("promtool")
    body, _ = scrape(_state())
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b"", proc.stderr.decode()


def test_status_shows_trips_per_board() -> None:
    status = _state().to_status()
    assert status["boards"]["a"]["trips"] == {"brownout": 2, "chip_overheat": 1}
    assert status["boards"]["b"]["trips"] == {}


# ------------------------------------------------------------------------------------------ 7. fan


class SimBus:
    """The emulated board's I2C devices as an ``I2CBus`` (what bitaxe-raw forwards), at a fixed time."""

    def __init__(self, kind: str = "gamma") -> None:
        self.devices = board_devices(kind, ChainCore(chips=1, seed=0))

    async def write(self, addr: int, data: bytes) -> None:
        self.devices[addr].write(data, 0.0)

    async def read(self, addr: int, n: int) -> bytes:
        return self.devices[addr].read(n, 0.0)

    async def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        await self.write(addr, data)
        return await self.read(addr, n)


@pytest.mark.parametrize("kind", ["gamma", "ultra"])
async def test_parts_control_reads_fan_duty_and_tach_with_the_telemetry(kind: str) -> None:
    ctl = PartsControl(lambda: NotImplemented, kind)
    ctl._power = board_power(kind, SimBus(kind))  # connect() would open bitaxe-raw; inject the parts
    await ctl._power.start()  # what connect() does next: the parts' start-up configuration
    assert fan_reading(ctl) is None
    await ctl.set_fan(50.0)
    t = await ctl.read_telemetry()
    assert t.chip_temp_c is not None
    fan = fan_reading(ctl)
    assert fan is not None and fan.duty is not None and fan.rpm is not None
    assert fan.duty == pytest.approx(0.5, abs=1 / 63)
    assert fan.rpm == pytest.approx(FAN_MAX_RPM * fan.duty, rel=0.01)
    await ctl.set_fan(100.0)
    await ctl.read_telemetry()
    fan = fan_reading(ctl)
    assert fan is not None and fan.duty == pytest.approx(percent_for_duty(63) / 100.0)
    assert fan.rpm == pytest.approx(FAN_MAX_RPM, rel=0.01)


def test_controls_without_a_fan_reading_give_none() -> None:
    assert fan_reading(NullControl()) is None


class _Stop(Exception):
    pass


class FanControl(NullControl):
    def __init__(self, telemetry: Telemetry, fan: FanReading) -> None:
        self.telemetry, self.last_fan = telemetry, fan

    async def read_telemetry(self) -> Telemetry:
        return self.telemetry


async def _one_telemetry_tick(control: NullControl) -> BoardState:
    async def stop(_s: float) -> None:
        raise _Stop

    st = BoardState("b0", "gamma", 1)
    board = BoardConfig(name="b0", kind="gamma", data_port="/dev/null", chips=1, safety=SafetyLimits())
    sup = BoardSupervisor(
        board, TimingConfig(), Pipeline(), st, lambda: NotImplemented, control=control, sleep=stop
    )
    with pytest.raises(_Stop):
        await sup.telemetry.run()
    return st


async def test_supervisor_sets_fan_state_and_trips_from_the_telemetry() -> None:
    brownout = Telemetry(chip_temp_c=50.0, input_voltage_v=4.2)
    st = await _one_telemetry_tick(FanControl(brownout, FanReading(duty=0.75, rpm=4500.0)))
    assert (st.fan_duty, st.fan_rpm) == (0.75, 4500.0)
    assert st.trips == {"brownout": 1}
    st = await _one_telemetry_tick(NullControl())
    assert (st.fan_duty, st.fan_rpm, st.trips) == (None, None, {})


# ------------------------------------------------------------------------------------------ 8. watchdog


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()


def _received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def _spin(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_watchdog_keeps_pinging_when_unhealthy_and_reports_it_in_status(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    health = [(True, "ok")]
    n = Notifier(socket_path=path)
    task = asyncio.create_task(watchdog_loop(n, 0.0, report=lambda: health[0]))
    await _spin()
    first = _received(sock)
    assert "WATCHDOG=1" in first and not [m for m in first if m.startswith("STATUS=")]
    health[0] = (False, "all boards failed")
    await _spin()
    second = _received(sock)
    assert "WATCHDOG=1" in second  # still alive: systemd must not restart the daemon in a loop
    assert second.count("STATUS=unhealthy: all boards failed") == 1  # sent once, on the change
    health[0] = (True, "ok")
    await _spin()
    assert "STATUS=healthy" in _received(sock)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    n.close()


async def test_daemon_watchdog_pings_with_every_board_failed(
    tmp_path: Path, listener: tuple[socket.socket, str]
) -> None:
    sock, path = listener
    d = Daemon(default_config(), state_dir=tmp_path)
    d.notifier = Notifier(socket_path=path)
    for name in ("a", "b"):
        d.state.add_board(name).status = "failed"
    assert d.state.health() == (False, "all boards failed")
    task = asyncio.create_task(d.watchdog(0.0))
    await _spin()
    got = _received(sock)
    assert "WATCHDOG=1" in got and "STATUS=unhealthy: all boards failed" in got
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    d.notifier.close()
