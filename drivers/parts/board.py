"""Board-level power facade: one ``BoardPower`` protocol over the two Bitaxe regulator designs.

* Ultra 201-205 (``"ultra"``): DS4432U trims the buck, INA260 measures the 5 V input, EMC2101 temps/fan;
  chip temperature = EMC2101 internal sensor + 5 C (as ESP-Miner).
* Ultra 207, Supra 402+, Gamma (``"gamma"``, ``"supra"``, ``"ultra207"``): TPS546D24A + EMC2101; chip
  temperature = the external diode.

The board versions and where each choice comes from: :mod:`drivers.parts.boards`. :meth:`BoardPower.start`
writes and verifies the parts' start-up configuration; a TPS546 output cannot be switched on before it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from drivers.i2c import I2CBus
from drivers.parts.boards import BoardVersion, board_version
from drivers.parts.ds4432u import DS4432U
from drivers.parts.emc2101 import EMC2101
from drivers.parts.errors import PowerError
from drivers.parts.ina260 import INA260
from drivers.parts.tps546 import TPS546
from drivers.parts.tps546_config import Tps546Config


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One reading. Volts, amps, watts, deg C, percent; None where the board has no sensor for it.

    ``vout`` is measured on TPS546 boards and the DAC setpoint on the Ultra; ``power_w`` is the regulator
    output (TPS546: vout * iout) or the board input (Ultra: INA260). ``status_word``: the TPS546's
    STATUS_WORD, read last (None on boards without one; :func:`drivers.parts.tps546.latch_fault`).
    """

    vin: float | None
    vout: float | None
    iout: float | None
    power_w: float | None
    chip_temp_c: float | None
    vr_temp_c: float | None
    fan_pct: float | None
    status_word: int | None = None


class BoardPower(Protocol):
    """Core voltage control and telemetry of one board."""

    async def start(self) -> None:
        """Write the parts' start-up configuration and read it back (:class:`PowerError` when it does not
        verify; the core supply stays off)."""
        ...

    async def set_core_voltage(self, volts: float) -> None:
        """Range-check and apply a core voltage (V)."""
        ...

    async def core_voltage_off(self) -> None:
        """Switch the core supply off (raises :class:`PowerError` when the board cannot)."""
        ...

    async def set_fan_percent(self, pct: float) -> None:
        """Fan duty, 0-100 %."""
        ...

    async def read_telemetry(self) -> Telemetry:
        """Read every sensor the board has."""
        ...


class UltraPower:
    """Ultra 201-205. ``enable``: optional callback switching the buck (e.g. a bitaxe-raw GPIO)."""

    def __init__(
        self,
        bus: I2CBus,
        enable: Callable[[bool], Awaitable[None]] | None = None,
        board: BoardVersion | None = None,
    ) -> None:
        self.dac = DS4432U(bus)
        self.monitor = INA260(bus)
        self.fan = EMC2101(bus)
        self.enable = enable
        self.board = board or board_version("ultra")

    async def start(self) -> None:
        # ESP-Miner writes nothing to the DS4432U or INA260 at start-up; the EMC2101 is configured
        await self.fan.configure(self.board.emc_ideality, self.board.emc_beta)

    async def set_core_voltage(self, volts: float) -> None:
        await self.dac.set_voltage(volts)
        if self.enable is not None:
            await self.enable(True)

    async def core_voltage_off(self) -> None:
        if self.enable is None:
            raise PowerError(
                "this Ultra board has no regulator enable wired; hold the chips in reset instead"
            )
        await self.enable(False)

    async def set_fan_percent(self, pct: float) -> None:
        await self.fan.set_fan_percent(pct)

    async def read_telemetry(self) -> Telemetry:
        return Telemetry(
            vin=await self.monitor.read_voltage(),
            vout=await self.dac.read_voltage(),
            iout=None,
            power_w=await self.monitor.read_power(),
            chip_temp_c=await _chip_temp(self.fan, self.board),
            vr_temp_c=None,
            fan_pct=await self.fan.read_fan_percent(),
        )


class Tps546Power:
    """Ultra 207, Supra 402+, Gamma. ``config``: the regulator's start-up configuration (ESP-Miner's)."""

    def __init__(
        self, bus: I2CBus, board: BoardVersion | None = None, config: Tps546Config | None = None
    ) -> None:
        self.vr = TPS546(bus)
        self.fan = EMC2101(bus)
        self.board = board or board_version("gamma")
        self.config = config or Tps546Config()

    async def start(self) -> None:
        # ESP-Miner's order: VCORE_init (TPS546_init) before Thermal_init (EMC2101_init)
        await self.vr.configure(self.config)
        await self.fan.configure(self.board.emc_ideality, self.board.emc_beta)

    async def set_core_voltage(self, volts: float) -> None:
        await self.vr.set_vout(volts)

    async def core_voltage_off(self) -> None:
        await self.vr.set_enabled(False)

    async def set_fan_percent(self, pct: float) -> None:
        await self.fan.set_fan_percent(pct)

    async def read_telemetry(self) -> Telemetry:
        vout = await self.vr.read_vout()
        iout = await self.vr.read_iout()
        return Telemetry(
            vin=await self.vr.read_vin(),
            vout=vout,
            iout=iout,
            power_w=vout * iout,
            chip_temp_c=await _chip_temp(self.fan, self.board),
            vr_temp_c=await self.vr.read_temperature(),
            fan_pct=await self.fan.read_fan_percent(),
            status_word=await self.vr.read_status(),  # last: a latch the readings above caused shows now
        )


async def _chip_temp(fan: EMC2101, board: BoardVersion) -> float:
    """The chip temperature from the sensor ESP-Miner trusts on ``board`` (``thermal.c``), deg C."""
    raw = await (fan.read_internal_temp() if board.chip_temp_internal else fan.read_external_temp())
    return raw + board.temp_offset_c


BOARD_KINDS: dict[str, str] = {"ultra": "ultra", "ultra207": "tps546", "supra": "tps546", "gamma": "tps546"}


def board_power(
    kind: str, bus: I2CBus, enable: Callable[[bool], Awaitable[None]] | None = None
) -> BoardPower:
    """The facade for board ``kind`` (``ultra``, ``ultra207``, ``supra``, ``gamma``) or an ESP-Miner board
    version (``"201"`` ... ``"603"``, :data:`drivers.parts.boards.BOARD_VERSIONS`)."""
    board = board_version(kind)
    return UltraPower(bus, enable, board) if board.regulator == "ds4432u" else Tps546Power(bus, board)
