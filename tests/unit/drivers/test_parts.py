"""Board part drivers and the BoardPower facade against a scripted dict-based fake I2C bus."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.i2c import I2CBus, I2CError
from drivers.parts import (
    DS4432U,
    EMC2101,
    INA260,
    TPS546,
    PowerError,
    Telemetry,
    Tps546Power,
    board_power,
    ds4432u,
    emc2101,
    tps546,
)


class FakeBus:
    """Pointer-register devices: ``regs[addr][reg] = bytes``; the first written byte selects the register."""

    def __init__(self, regs: dict[int, dict[int, bytes]]) -> None:
        self.regs = regs
        self.ptr: dict[int, int] = {}
        self.log: list[tuple[str, int, bytes]] = []

    def _dev(self, addr: int) -> dict[int, bytes]:
        if addr not in self.regs:
            raise I2CError(f"NACK from 0x{addr:02X}")
        return self.regs[addr]

    async def write(self, addr: int, data: bytes) -> None:
        dev = self._dev(addr)
        self.log.append(("w", addr, data))
        self.ptr[addr] = data[0]
        if len(data) > 1:
            dev[data[0]] = data[1:]

    async def read(self, addr: int, n: int) -> bytes:
        dev = self._dev(addr)
        self.log.append(("r", addr, bytes([n])))
        return (dev.get(self.ptr.get(addr, 0), b"") + bytes(n))[:n]

    async def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        await self.write(addr, data)
        return await self.read(addr, n)


def test_fake_bus_is_an_i2c_bus() -> None:
    assert isinstance(FakeBus({}), I2CBus)


# ---- DS4432U -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("v", "code"), list(ds4432u.PRESETS))
def test_ds4432u_firmware_presets(v: float, code: int) -> None:
    # ESP-Miner's transfer function with ceil gives its preset bytes (1.10 V -> 0xE1 ... 1.30 V -> 0xAB)
    assert ds4432u.code_for_voltage(v) == code
    assert v - ds4432u.V_PER_STEP < ds4432u.voltage_for_code(code) <= v


def test_ds4432u_literal_codes() -> None:
    assert ds4432u.code_for_voltage(1.175) == 0xCD  # sink 76.6 -> 77: 1.17355 V
    # between 0xE1 (1.09955 V) and 0xE0 (1.10325 V): the lower one; rounding to nearest gave 0xE0
    assert ds4432u.code_for_voltage(1.1025) == 0xE1
    assert ds4432u.voltage_for_code(0x00) == pytest.approx(0.6 * (1 + 4750 / 3320))
    assert ds4432u.code_for_voltage(1.0) == 0xFC and ds4432u.code_for_voltage(1.4) == 0x90


@given(st.floats(1.0, 1.4))
def test_ds4432u_within_one_step_below(v: float) -> None:
    code = ds4432u.code_for_voltage(v)
    assert code & 0x80  # the whole hard range is below the zero-current voltage: sink
    assert v - ds4432u.V_PER_STEP - 1e-12 <= ds4432u.voltage_for_code(code) <= v


@pytest.mark.parametrize("v", [0.9, 0.999, 1.401, 1.5, float("nan")])
def test_ds4432u_range_check(v: float) -> None:
    with pytest.raises(PowerError, match=r"outside 1\.00-1\.40 V"):
        ds4432u.code_for_voltage(v)


async def test_ds4432u_writes_register_f8() -> None:
    bus = FakeBus({0x48: {}})
    dac = DS4432U(bus)
    assert await dac.set_voltage(1.2) == 0xC6
    assert bus.log == [("w", 0x48, b"\xf8\xc6")]
    assert await dac.read_voltage() == pytest.approx(1.19945, abs=1e-5)
    with pytest.raises(PowerError):
        await dac.set_voltage(1.45)
    assert bus.regs[0x48][0xF8] == b"\xc6"  # unchanged after the refused setpoint


# ---- TPS546 --------------------------------------------------------------------------------------------
def test_linear11_literals() -> None:
    assert tps546.decode_linear11(0xD3E8) == 15.625  # exp -6, mantissa 1000
    assert tps546.decode_linear11(0xCA80) == pytest.approx(5.0)  # exp -7, mantissa 640
    assert tps546.decode_linear11(0x07FF) == -1.0  # exp 0, mantissa -1
    assert tps546.decode_linear11(0x0000) == 0.0


@given(st.floats(-500, 500))
def test_linear11_round_trip(x: float) -> None:
    y = tps546.decode_linear11(tps546.encode_linear11(x))
    assert y == pytest.approx(x, abs=max(abs(x) / 1000, 2**-16))


def test_vout_mode_and_status() -> None:
    assert tps546.vout_exponent(0x17) == -9
    assert tps546.vout_exponent(0x97) == -9  # a real TPS546D24A: relative format (bit 7), linear, -9
    assert tps546.vout_exponent(0x00) == 0
    for mode in (0x40, 0x20, 0xC0):
        with pytest.raises(PowerError, match="not linear"):
            tps546.vout_exponent(mode)
    assert tps546.status_flags(0x0840) == ["POWER_GOOD#", "OFF"]
    assert tps546.status_flags(0) == []


def tps_bus() -> FakeBus:
    return FakeBus(
        {
            0x24: {
                0x20: b"\x97",  # VOUT_MODE as a TPS546D24A answers: relative, linear, exponent -9
                0x88: tps546.encode_linear11(5.0).to_bytes(2, "little"),
                0x8B: round(1.196 * 512).to_bytes(2, "little"),
                0x8C: tps546.encode_linear11(10.5).to_bytes(2, "little"),
                0x8D: tps546.encode_linear11(48.25).to_bytes(2, "little"),
                0x79: (0x0000).to_bytes(2, "little"),
            },
            0x4C: {0x00: b"\x25", 0x01: b"\x3c", 0x10: b"\xa0", 0x4C: b"\x3f"},
        }
    )


async def test_tps546_set_vout_ulinear16_and_on() -> None:
    bus = tps_bus()
    vr = TPS546(bus)
    vr.configured = True  # the start-up configuration is tested against the emulated part
    await vr.set_vout(1.2)
    writes = [(a, d) for k, a, d in bus.log if k == "w" and len(d) > 1]
    assert writes == [(0x24, bytes([0x21]) + (614).to_bytes(2, "little")), (0x24, b"\x01\x80")]
    assert await vr.read_vout_command() == pytest.approx(614 / 512)
    assert await vr.read_status() == 0
    await vr.set_enabled(False)
    assert bus.regs[0x24][0x01] == b"\x00"
    for bad in (0.95, 1.45):
        with pytest.raises(PowerError, match=r"outside 1\.00-1\.40 V"):
            await vr.set_vout(bad)


async def test_tps546_refuses_the_output_before_configuration() -> None:
    bus = tps_bus()
    vr = TPS546(bus)
    with pytest.raises(PowerError, match="start-up configuration has not been written and verified"):
        await vr.set_vout(1.2)
    with pytest.raises(PowerError, match="not been written"):
        await vr.set_enabled(True)
    assert [d for k, _, d in bus.log if k == "w" and len(d) > 1] == []  # nothing written
    await vr.set_enabled(False)  # switching off is always allowed
    assert bus.regs[0x24][0x01] == b"\x00"


async def test_tps_board_telemetry() -> None:
    bus = tps_bus()
    board = board_power("gamma", bus)
    t = await board.read_telemetry()
    assert t == Telemetry(
        vin=pytest.approx(5.0),  # type: ignore[arg-type]
        vout=pytest.approx(1.196, abs=0.002),  # type: ignore[arg-type]
        iout=pytest.approx(10.5),  # type: ignore[arg-type]
        power_w=pytest.approx(1.196 * 10.5, rel=0.01),  # type: ignore[arg-type]
        chip_temp_c=60.625,  # external diode, + 0 C on TPS546 boards
        vr_temp_c=pytest.approx(48.25),  # type: ignore[arg-type]
        fan_pct=100.0,
        status_word=0,  # STATUS_WORD, read as ESP-Miner's TPS546_check_status does
    )
    assert isinstance(board, Tps546Power)
    board.vr.configured = True
    await board.set_core_voltage(1.15)
    assert bus.regs[0x24][0x21] == (588).to_bytes(2, "little")  # 1.15 * 512 = 588.8, rounded down
    await board.core_voltage_off()
    assert bus.regs[0x24][0x01] == b"\x00"
    await board.set_fan_percent(50)
    assert bus.regs[0x4C][0x4C] == bytes([32])


# ---- INA260 / EMC2101 / Ultra --------------------------------------------------------------------------
async def test_ina260_scaling() -> None:
    bus = FakeBus(
        {
            0x40: {
                0x01: (800).to_bytes(2, "big"),
                0x02: (4000).to_bytes(2, "big"),
                0x03: (550).to_bytes(2, "big"),
            }
        }
    )
    ina = INA260(bus)
    assert await ina.read_current() == pytest.approx(1.0)
    assert await ina.read_voltage() == pytest.approx(5.0)
    assert await ina.read_power() == pytest.approx(5.5)
    bus.regs[0x40][0x01] = (0x10000 - 800).to_bytes(2, "big")
    assert await ina.read_current() == pytest.approx(-1.0)


def test_emc2101_conversions() -> None:
    assert emc2101.external_temp(0x3C, 0xA0) == 60.625
    assert emc2101.external_temp(0xFF, 0xE0) == -0.125
    assert emc2101.duty_for_percent(0) == 0 and emc2101.duty_for_percent(100) == 63
    assert emc2101.duty_for_percent(50) == 32
    assert emc2101.percent_for_duty(63) == 100.0 and emc2101.percent_for_duty(200) == 100.0
    with pytest.raises(ValueError):
        emc2101.duty_for_percent(101)


async def test_emc2101_reads() -> None:
    bus = FakeBus({0x4C: {0x00: b"\xf6", 0x01: b"\x3c", 0x10: b"\xa0", 0x46: b"\xe8", 0x47: b"\x03"}})
    fan = EMC2101(bus)
    assert await fan.read_internal_temp() == -10.0
    assert await fan.read_external_temp() == 60.625
    assert await fan.read_fan_rpm() == 5400.0
    assert await fan.set_fan_percent(100) == 63
    assert await fan.read_fan_percent() == 100.0
    bus.regs[0x4C][0x46] = bus.regs[0x4C][0x47] = b"\xff"
    assert await fan.read_fan_rpm() == 0.0


async def test_ultra_board() -> None:
    bus = FakeBus(
        {
            0x48: {0xF8: b"\xc6"},
            0x40: {
                0x01: (2400).to_bytes(2, "big"),
                0x02: (4000).to_bytes(2, "big"),
                0x03: (1500).to_bytes(2, "big"),
            },
            0x4C: {0x00: b"\x2d", 0x01: b"\x32", 0x10: b"\x00", 0x4C: b"\x00"},
        }
    )
    switched: list[bool] = []

    async def enable(on: bool) -> None:
        switched.append(on)

    board = board_power("ultra", bus, enable)
    t = await board.read_telemetry()
    assert t.vin == pytest.approx(5.0) and t.vout == pytest.approx(1.19945, abs=1e-5)
    assert t.power_w == pytest.approx(15.0)
    # ESP-Miner on Ultra 201-205: the EMC2101 internal sensor (0x2D = 45 C) + 5 C, not the diode (50 C)
    assert t.chip_temp_c == 50.0 and t.fan_pct == 0.0 and t.iout is None and t.vr_temp_c is None
    bus.regs[0x4C][0x00] = b"\x3c"
    assert (await board.read_telemetry()).chip_temp_c == 65.0
    await board.set_core_voltage(1.25)
    assert bus.regs[0x48][0xF8] == b"\xb9"
    with pytest.raises(PowerError):
        await board.set_core_voltage(1.45)
    await board.core_voltage_off()
    assert switched == [True, False]
    with pytest.raises(PowerError, match="no regulator enable"):
        await board_power("ultra", bus).core_voltage_off()


async def test_missing_device_and_unknown_kind() -> None:
    with pytest.raises(I2CError, match="NACK from 0x24"):
        await board_power("supra", FakeBus({})).read_telemetry()
    with pytest.raises(ValueError, match="unknown board kind"):
        board_power("antminer", FakeBus({}))
