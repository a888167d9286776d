"""bitaxe-raw device side and the I2C models: requests, replies, errors, and registers following the model."""

from __future__ import annotations

import pytest

from drivers.frames import read_reg
from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.chain import ChainCore
from simulator.i2c_devices import DS4432U, from_linear11, linear11
from tests.unit.simulator.test_sim_core import Host


def request(rid: int, page: int, cmd: int, data: bytes = b"") -> bytes:
    body = bytes([rid, 0x00, page, cmd]) + data
    return (len(body) + 2).to_bytes(2, "little") + body


def payload(reply: bytes, rid: int) -> bytes:
    # the length counts the payload or the whole reply, by firmware variant (test_bitaxe_raw_firmware.py)
    assert int.from_bytes(reply[:2], "little") in (len(reply), len(reply) - 3)
    assert reply[2] == rid
    return reply[3:]


def i2c_read(dev: BitaxeRawDevice, addr: int, reg: int, n: int, t: float) -> bytes:
    return payload(dev.feed(request(7, 0x05, 0x40, bytes([addr, reg, n])), t), 7)


def i2c_write(dev: BitaxeRawDevice, addr: int, data: bytes, t: float) -> None:
    assert payload(dev.feed(request(8, 0x05, 0x20, bytes([addr]) + data), t), 8) == bytes([len(data)])


@pytest.mark.parametrize("x", [0.0, 1.2, 5.0, 11.5, 63.25, -3.5])
def test_linear11_roundtrip(x: float) -> None:
    assert from_linear11(linear11(x)) == pytest.approx(x, rel=2e-3, abs=1e-3)


def test_gamma_tps546_sets_and_reports_core_voltage() -> None:
    core = ChainCore(chips=1, seed=0)
    dev = BitaxeRawDevice(core, "gamma")
    vout = int.from_bytes(i2c_read(dev, 0x24, 0x8B, 2, 0.1), "little") * 2**-9
    assert vout == pytest.approx(1.2, abs=0.002)
    # VOUT_SCALE_LOOP 0.25 as ESP-Miner writes it (the emulated part powers on at 0.5: twice the output)
    i2c_write(dev, 0x24, bytes([0x29]) + (0xAA00).to_bytes(2, "little"), 0.15)
    i2c_write(dev, 0x24, bytes([0x21]) + round(1.1 * 512).to_bytes(2, "little"), 0.2)
    vout = int.from_bytes(i2c_read(dev, 0x24, 0x8B, 2, 0.3), "little") * 2**-9
    assert vout == pytest.approx(1.1, abs=0.002)
    assert core.physics.volts == pytest.approx(1.1, abs=0.002)
    assert from_linear11(int.from_bytes(i2c_read(dev, 0x24, 0x88, 2, 0.3), "little")) == pytest.approx(5.0)
    dev.devices[0x24].vin_v = 4.4  # type: ignore[attr-defined]
    vin = from_linear11(int.from_bytes(i2c_read(dev, 0x24, 0x88, 2, 0.3), "little"))
    assert vin == pytest.approx(4.4, abs=0.01)
    assert i2c_read(dev, 0x24, 0xAD, 7, 0.3)[1:3] == b"TI"


def test_gamma_regulator_off_browns_out_the_chain() -> None:
    core = ChainCore(chips=2, seed=0)
    dev = BitaxeRawDevice(core, "gamma")
    i2c_write(dev, 0x24, bytes([0x01, 0x00]), 0.05)
    core.advance(0.08)
    assert not core.in_reset  # power-on ON_OFF_CONFIG (0x17): OPERATION is ignored
    i2c_write(dev, 0x24, bytes([0x02, 0x1B]), 0.1)  # ESP-Miner's ON_OFF_CONFIG: OPERATION (0x00) decides
    core.advance(0.2)
    assert core.in_reset and core.stats.brownouts == 1
    assert int.from_bytes(i2c_read(dev, 0x24, 0x79, 2, 0.2), "little") & 0x0040
    i2c_write(dev, 0x24, bytes([0x01, 0x80]), 0.3)
    core.advance(0.4)
    assert not core.in_reset


def test_ultra_ds4432_ina260_emc2101_follow_the_model() -> None:
    core = ChainCore(chips=1, seed=0)
    host = Host(core)
    dev = BitaxeRawDevice(core, "ultra")
    assert DS4432U.code_for(1.2) == 0xC6 and DS4432U.code_for(1.1) == 0xE1 and DS4432U.code_for(1.3) == 0xAB
    i2c_write(dev, 0x48, bytes([0xF8, 0xB9]), 0.01)  # 1.25 V
    core.advance(0.02)
    assert core.physics.volts == pytest.approx(1.25, abs=0.003)
    power_idle = int.from_bytes(i2c_read(dev, 0x40, 0x03, 2, 0.02), "big") * 0.010
    host.t = 0.03
    host.bring_up()  # 485 MHz
    core.advance(host.t + 60.0)
    t = host.t + 60.0
    power = int.from_bytes(i2c_read(dev, 0x40, 0x03, 2, t), "big") * 0.010
    amps = int.from_bytes(i2c_read(dev, 0x40, 0x01, 2, t), "big") * 1.25e-3
    bus = int.from_bytes(i2c_read(dev, 0x40, 0x02, 2, t), "big") * 1.25e-3
    assert bus == pytest.approx(5.0)
    assert power > power_idle + 5.0
    assert amps * bus == pytest.approx(power, rel=0.01)
    hi = i2c_read(dev, 0x4C, 0x01, 1, t)[0]
    lo = i2c_read(dev, 0x4C, 0x10, 1, t)[0]
    assert hi + (lo >> 5) / 8 == pytest.approx(float(core.physics.temp_c[0]), abs=0.2)
    i2c_write(dev, 0x4C, bytes([0x4C, 63]), t)
    assert core.physics.fan_duty == 0.75  # power-on fan configuration: the duty register is not in charge
    i2c_write(dev, 0x4C, bytes([0x4A, 0x23]), t)  # ESP-Miner's fan configuration: direct setting
    assert core.physics.fan_duty == 1.0
    assert i2c_read(dev, 0x4C, 0x4C, 1, t) == bytes([63])


def test_gpio_reset_line_holds_the_chain() -> None:
    core = ChainCore(chips=2, seed=0)
    host = Host(core)
    dev = BitaxeRawDevice(core, "gamma")
    assert payload(dev.feed(request(1, 0x06, 0x00, b"\x00"), 0.001), 1) == b"\x00"
    host.t = 0.002
    assert host.send(read_reg(0x00).encode()) == []
    assert payload(dev.feed(request(2, 0x06, 0x00, b""), host.t), 2) == b"\x00"
    assert payload(dev.feed(request(3, 0x06, 0x00, b"\x01"), host.t), 3) == b"\x01"
    assert len(host.send(read_reg(0x00).encode())) == 2


def test_accelerated_clock_maps_simulated_and_host_time() -> None:
    from simulator.board_spec import BoardConfig
    from simulator.pty_server import SimulatedBoard

    now = [5_000_000_000]
    board = SimulatedBoard(BoardConfig(chips=1, speed=20.0), clock=lambda: now[0])
    board.t0_ns = now[0]
    now[0] += 250_000_000  # 0.25 s of host time
    assert board.sim_now() == pytest.approx(5.0)
    assert board.host_ns(5.0) == now[0]
    with pytest.raises(ValueError, match="speed"):
        SimulatedBoard(BoardConfig(speed=0.0))
