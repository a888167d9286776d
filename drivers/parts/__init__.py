"""Board parts on the I2C bus (DS4432U, TPS546D24A, INA260, EMC2101) and the ``BoardPower`` facade."""

from drivers.parts.board import BOARD_KINDS, BoardPower, Telemetry, Tps546Power, UltraPower, board_power
from drivers.parts.ds4432u import DS4432U
from drivers.parts.emc2101 import EMC2101
from drivers.parts.errors import PowerError
from drivers.parts.ina260 import INA260
from drivers.parts.tps546 import TPS546

__all__ = [
    "BOARD_KINDS",
    "DS4432U",
    "EMC2101",
    "INA260",
    "TPS546",
    "BoardPower",
    "PowerError",
    "Telemetry",
    "Tps546Power",
    "UltraPower",
    "board_power",
]
