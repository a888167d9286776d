"""EMC2101 start-up against the emulated part, the board-version table, the chip-temperature sensor per
board, and the shipped core-voltage envelope against ESP-Miner's presets."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from daemon.config import ConfigError, SafetyLimits, parse_config
from drivers.parts import BOARD_VERSIONS, EMC2101, PowerError, UltraPower, board_power, board_version
from drivers.parts import emc2101 as emc
from simulator.i2c_devices import EMC2101_POWER_ON, FAN_MAX_RPM, ULTRA_INTERNAL_BELOW_CHIP_C
from tests.unit.i2c_sim import SimBus


async def test_emc2101_configure_writes_the_firmware_bytes() -> None:
    bus = SimBus("ultra")
    assert await EMC2101(bus).configure() == [(0x03, 0x04), (0x4A, 0x23)]
    assert bus.writes == [(0x4C, b"\x03\x04"), (0x4C, b"\x4a\x23")]
    bus = SimBus("gamma")
    await EMC2101(bus).configure(ideality=0x24, beta=0x00)
    assert [d for _, d in bus.writes] == [b"\x03\x04", b"\x4a\x23", b"\x17\x24", b"\x18\x00"]


def test_emulated_emc2101_powers_on_with_other_values() -> None:
    assert EMC2101_POWER_ON[emc.REG_CONFIG] != bytes([emc.CONFIG_TACH_INPUT])
    assert EMC2101_POWER_ON[emc.REG_FAN_CONFIG] != bytes([emc.FAN_CONFIG])
    assert EMC2101_POWER_ON[emc.REG_IDEALITY] != b"\x24" and EMC2101_POWER_ON[emc.REG_BETA] != b"\x00"


@pytest.mark.parametrize("reg", [0x03, 0x4A, 0x17, 0x18])
async def test_a_missing_emc2101_write_is_caught(reg: int) -> None:
    bus = SimBus("gamma", drop={(0x4C, reg)})
    with pytest.raises(PowerError, match=rf"EMC2101 start-up .* did not verify: register 0x{reg:02X}"):
        await EMC2101(bus).configure(ideality=0x24, beta=0x00)


async def test_emulated_emc2101_needs_the_start_up_writes_for_fan_and_tach() -> None:
    bus = SimBus("gamma")
    fan = EMC2101(bus)
    duty0 = bus.core.physics.fan_duty
    await fan.set_fan_percent(100)
    assert bus.core.physics.fan_duty == duty0  # 0x4A not in direct-setting mode: the register is ignored
    assert await fan.read_fan_rpm() == 0.0  # pin 6 is ALERT, not TACH
    await fan.configure()
    assert bus.core.physics.fan_duty == 1.0  # direct mode takes the duty register
    assert await fan.read_fan_rpm() == pytest.approx(FAN_MAX_RPM, rel=0.01)


def test_board_versions_follow_esp_miner_device_config() -> None:
    for v in ("201", "202", "203", "204", "205"):
        b = BOARD_VERSIONS[v]
        assert (b.asic, b.regulator, b.chip_temp_internal) == ("BM1366", "ds4432u", True)
        assert b.temp_offset_c == 5.0
        assert b.chip_sensor == "EMC2101 internal sensor + 5 C"
        assert (b.preset_min_v, b.preset_max_v) == (1.10, 1.30)
    b = board_version("207")
    assert (b.asic, b.regulator, b.chip_temp_internal, b.temp_offset_c) == ("BM1366", "tps546", False, 0.0)
    g = board_version("gamma")
    assert (g.version, g.emc_ideality, g.emc_beta, g.preset_max_v) == ("601", 0x24, 0x00, 1.25)
    assert board_version("ULTRA").version == "204" and board_version("supra").asic == "BM1368"
    with pytest.raises(ValueError, match="unknown board kind 'hex'"):
        board_version("hex")


async def test_ultra_overheat_watches_the_internal_sensor_plus_5() -> None:
    bus = SimBus("ultra")
    board = board_power("203", bus)
    assert isinstance(board, UltraPower)
    await board.start()
    bus.core.physics.temp_c[:] = 70.0
    t = await board.read_telemetry()
    # emulated internal sensor sits 5 C below the chip; the firmware's + 5 C gives the chip back
    assert t.chip_temp_c == pytest.approx(70.0 - ULTRA_INTERNAL_BELOW_CHIP_C + 5.0, abs=0.5)


async def test_tps546_boards_read_the_external_diode() -> None:
    bus = SimBus("gamma")
    board = board_power("ultra207", bus)
    bus.core.physics.temp_c[:] = 61.3
    assert (await board.read_telemetry()).chip_temp_c == pytest.approx(61.25)  # 1/8 C, + 0 C


def test_shipped_envelope_stops_at_the_firmware_presets() -> None:
    top = board_version("ultra").preset_max_v  # BM1366: ESP-Miner voltage_options end at 1300 mV
    bottom = board_version("ultra").preset_min_v
    assert SafetyLimits().core_voltage_max_v <= top and SafetyLimits().core_voltage_min_v >= bottom
    text = resources.files("daemon").joinpath("defaults.toml").read_text()
    safety = tomllib.loads(text)["safety"]
    assert bottom <= safety["core_voltage_min_v"] <= safety["core_voltage_max_v"] <= top


def test_config_board_version_picks_the_table_entry() -> None:
    board = {"name": "u", "kind": "ultra", "data_port": "/dev/ttyACM1", "board_version": "202"}
    assert parse_config({"boards": [board]}).boards[0].board_version == "202"
    assert parse_config({"boards": [board | {"board_version": ""}]}).boards[0].board_version == ""
    gamma = board | {"kind": "gamma", "board_version": "207"}
    assert parse_config({"boards": [gamma]}).boards[0].board_version == "207"
    with pytest.raises(ConfigError, match=r"boards\[0\]\.board_version: version 207 .* needs kind gamma"):
        parse_config({"boards": [board | {"board_version": "207"}]})
    with pytest.raises(ConfigError, match=r"boards\[0\]\.board_version: value '302' not allowed"):
        parse_config({"boards": [board | {"board_version": "302"}]})
    with pytest.raises(ConfigError, match="not 'generic'"):
        parse_config({"boards": [board | {"kind": "generic"}]})


async def test_ultra207_board_skips_the_gamma_ideality_writes() -> None:
    bus = SimBus("gamma")
    await board_power("207", bus).start()
    assert [d[0] for a, d in bus.writes if a == 0x4C] == [0x03, 0x4A]  # no 0x17 / 0x18 as on the 600 series
