"""TPS546D24A start-up configuration: ESP-Miner's words on literal bytes, written and verified against the
emulated part (whose power-on values differ, so a missing write is caught), output refused until then."""

from __future__ import annotations

import pytest

from drivers.parts import TPS546, PowerError, Tps546Config, board_power, pmbus
from drivers.parts import tps546_config as tc
from drivers.parts.tps546 import status_flags
from simulator.i2c_devices import TPS546_POWER_ON, TPS546D24A
from tests.unit.i2c_sim import SimBus

#: ESP-Miner TPS546_write_entire_config for the single-phase boards (vcore.c default branch) with VOUT_MODE
#: exponent -9, as bytes on the bus after the address. Hand-derived from the C (float32, truncating casts).
FIRMWARE_WRITES = [
    ("ON_OFF_CONFIG", "02 1b"),
    ("STACK_CONFIG", "ec 00 00"),
    ("SYNC_CONFIG", "e4 10"),
    ("PHASE", "04 00"),
    ("FREQUENCY_SWITCH", "33 8a 02"),  # 650 kHz, exponent 0
    ("VIN_ON", "35 66 ca"),  # 4.8 V: exponent -7, mantissa 614
    ("VIN_OFF", "36 40 ca"),  # 4.5 V
    ("VIN_OV_FAULT_LIMIT", "55 40 cb"),  # 6.5 V
    ("VIN_OV_FAULT_RESPONSE", "56 b7"),
    ("VOUT_SCALE_LOOP", "29 00 aa"),  # 0.25: exponent -11, mantissa 512
    ("VOUT_COMMAND", "21 66 02"),  # 1.2 V -> 614
    ("VOUT_MAX", "24 00 04"),  # 2.0 V
    ("VOUT_MIN", "2b 00 02"),  # 1.0 V
    ("VOUT_OV_FAULT_LIMIT", "40 80 02"),  # 1.25
    ("VOUT_OV_WARN_LIMIT", "42 51 02"),  # 1.16 -> 593
    ("VOUT_MARGIN_HIGH", "25 33 02"),  # 1.1 -> 563
    ("VOUT_MARGIN_LOW", "26 cc 01"),  # 0.90 -> 460
    ("VOUT_UV_WARN_LIMIT", "43 cc 01"),
    ("VOUT_UV_FAULT_LIMIT", "44 80 01"),  # 0.75 -> 384
    ("IOUT_OC_WARN_LIMIT", "4a 20 db"),  # 25 A: exponent -5, mantissa 800
    ("IOUT_OC_FAULT_LIMIT", "46 c0 db"),  # 30 A
    ("IOUT_OC_FAULT_RESPONSE", "47 c0"),  # shut down, latch off
    ("OT_WARN_LIMIT", "51 69 00"),  # 105 C
    ("OT_FAULT_LIMIT", "4f 91 00"),  # 145 C
    ("OT_FAULT_RESPONSE", "50 ff"),
    ("TON_DELAY", "60 00 00"),
    ("TON_RISE", "61 03 00"),
    ("TON_MAX_FAULT_LIMIT", "62 00 00"),
    ("TON_MAX_FAULT_RESPONSE", "63 3b"),
    ("TOFF_DELAY", "64 00 00"),
    ("TOFF_FALL", "65 00 00"),
    ("PIN_DETECT_OVERRIDE", "ee ff ff"),
]


def test_encoders_match_the_firmware_words() -> None:
    assert pmbus.slinear11_from_float(0.25) == 0xAA00
    assert pmbus.slinear11_from_float(4.8) == 0xCA66
    assert pmbus.slinear11_from_float(25.0) == 0xDB20
    assert pmbus.slinear11_from_float(11.0) == 0xD2C0  # GammaTurbo's VIN_ON
    assert pmbus.slinear11_from_float(0.0) == 0 and pmbus.slinear11_from_float(-1.0) == 0
    assert pmbus.slinear11_from_int(650) == 0x028A and pmbus.slinear11_from_int(1500) == 0x0AEE  # 750 x 2^1
    assert pmbus.ulinear16_from_float(1.16, -9) == 593
    assert pmbus.decode_linear11(0xAA00) == 0.25 and pmbus.decode_linear11(0xCA66) == 4.796875


def test_startup_writes_are_the_firmware_bytes() -> None:
    writes = tc.startup_writes(Tps546Config(), -9)
    assert [(w.name, w.wire.hex(" ")) for w in writes] == FIRMWARE_WRITES
    assert tc.ON_OFF_CONFIG_INIT == 0x1F and tc.ON_OFF_CONFIG_RUN == 0x1B


def test_every_configured_register_powers_on_different_in_the_emulator() -> None:
    # otherwise dropping that write could not be caught
    for w in tc.startup_writes(Tps546Config(), -9):
        if w.cmd != tc.VOUT_COMMAND:
            assert TPS546_POWER_ON[w.cmd] != w.data, w.name


async def test_configure_against_the_emulated_part() -> None:
    bus = SimBus("gamma")
    vr = TPS546(bus)
    writes = await vr.configure()
    sent = [d.hex(" ") for a, d in bus.writes if a == 0x24]
    # ESP-Miner's TPS546_init order: output off, ON_OFF_CONFIG 0x1F, the configuration, CLEAR_FAULTS
    assert sent == ["01 00", "02 1f", *[h for _, h in FIRMWARE_WRITES], "03"]
    assert [w.name for w in writes] == [n for n, _ in FIRMWARE_WRITES]
    assert vr.configured
    assert await bus.write_read(0x24, bytes([tc.VOUT_MODE]), 1) == b"\x97" and await vr.exponent() == -9
    await vr.set_vout(1.15)
    assert bus.core.physics.v_target == pytest.approx(588 / 512)  # scale 0.25 on a 0.25 board: as commanded
    assert bus.core.physics.powered


# VOUT_COMMAND powers on at the chain's start voltage in the emulator: its own test follows
@pytest.mark.parametrize("name", [n for n, _ in FIRMWARE_WRITES if n != "VOUT_COMMAND"])
async def test_a_missing_write_is_caught_and_the_output_stays_off(name: str) -> None:
    cmd = next(w.cmd for w in tc.startup_writes(Tps546Config(), -9) if w.name == name)
    bus = SimBus("gamma", drop={(0x24, cmd)})
    vr = TPS546(bus)
    with pytest.raises(PowerError, match=rf"did not verify: {name} \(0x{cmd:02X}\).*output left off"):
        await vr.configure()
    assert not vr.configured
    with pytest.raises(PowerError, match="not been written and verified"):
        await vr.set_vout(1.2)
    # OPERATION off went through first; without any ON_OFF_CONFIG write the part ignores OPERATION and
    # stays on at its power-on voltage (the hazard the refusal reports)
    assert bus.core.physics.powered == (name == "ON_OFF_CONFIG")


async def test_a_missing_vout_command_write_is_caught() -> None:
    bus = SimBus("gamma", drop={(0x24, tc.VOUT_COMMAND)})
    dev = bus.devices[0x24]
    assert isinstance(dev, TPS546D24A)
    dev.stored[tc.VOUT_COMMAND] = (600).to_bytes(2, "little")
    with pytest.raises(PowerError, match=r"VOUT_COMMAND \(0x21\) wrote 66 02, read back 58 02"):
        await TPS546(bus).configure()


async def test_wrong_device_id_is_refused_before_any_write() -> None:
    bus = SimBus("gamma")
    dev = bus.devices[0x24]
    assert isinstance(dev, TPS546D24A)
    dev.DEVICE_ID = bytes([0x06, 0x54, 0x49, 0x54, 0x6B, 0x24, 0x41])  # a TPS546B24A: not accepted
    with pytest.raises(PowerError, match="IC_DEVICE_ID 54 49 54 6b 24 41 is not a TPS546D24A/S"):
        await TPS546(bus).configure()
    assert bus.writes == []


async def test_emulator_honours_the_scale_loop_and_on_off_config() -> None:
    # what an unconfigured part does: OPERATION is ignored (ON_OFF_CONFIG 0x17) and the power-on scale 0.5
    # doubles the output; the reason the daemon refuses to run one
    bus = SimBus("gamma")
    await bus.write(0x24, bytes([tc.OPERATION, 0x00]))
    assert bus.core.physics.powered
    await bus.write(0x24, bytes([tc.VOUT_COMMAND]) + (588).to_bytes(2, "little"))
    assert bus.core.physics.v_target == pytest.approx(2 * 588 / 512)
    await bus.write(0x24, bytes([tc.VOUT_SCALE_LOOP]) + (0xAA00).to_bytes(2, "little"))
    assert bus.core.physics.v_target == pytest.approx(588 / 512)
    await bus.write(0x24, bytes([tc.ON_OFF_CONFIG, 0x1B]))
    assert not bus.core.physics.powered  # OPERATION (0x00) now decides
    await bus.write(0x24, bytes([tc.VOUT_MAX]) + (563).to_bytes(2, "little"))
    assert bus.core.physics.v_target == pytest.approx(563 / 512)  # command clamped to VOUT_MAX


async def test_emulated_overcurrent_latches_off_with_the_firmware_response() -> None:
    bus = SimBus("gamma")
    vr = TPS546(bus)
    await vr.configure(Tps546Config(iout_oc_fault_limit=0.05, iout_oc_warn_limit=0.04))
    await vr.set_vout(1.2)
    assert bus.core.physics.powered
    await vr.read_iout()  # the chain draws far more than 50 mA: IOUT_OC_FAULT_RESPONSE 0xC0 latches off
    assert not bus.core.physics.powered
    assert "IOUT_OC" in status_flags(await vr.read_status())
    await vr.set_enabled(False)  # OPERATION off clears the latch; on again restarts
    await vr.set_enabled(True)
    assert bus.core.physics.powered


async def test_tps546_board_start_configures_regulator_then_fan() -> None:
    bus = SimBus("gamma")
    board = board_power("gamma", bus)
    with pytest.raises(PowerError, match="not been written"):
        await board.set_core_voltage(1.2)
    await board.start()
    regs = [(a, d[0]) for a, d in bus.writes if len(d) > 1]
    assert regs[-2:] == [(0x4C, 0x17), (0x4C, 0x18)]  # the Gamma 600 series' ideality and beta follow
    assert regs.index((0x24, tc.PIN_DETECT_OVERRIDE)) < regs.index((0x4C, 0x03))
    await board.set_core_voltage(1.2)
    assert bus.core.physics.v_target == pytest.approx(614 / 512)
