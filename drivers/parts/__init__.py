"""Board parts on the I2C bus (DS4432U, TPS546D24A, INA260, EMC2101) and the ``BoardPower`` facade."""

from drivers.parts.board import BOARD_KINDS, BoardPower, Telemetry, Tps546Power, UltraPower, board_power
from drivers.parts.boards import BOARD_VERSIONS, BoardVersion, board_version
from drivers.parts.ds4432u import DS4432U
from drivers.parts.emc2101 import EMC2101
from drivers.parts.errors import PowerError
from drivers.parts.ina260 import INA260
from drivers.parts.tps546 import TPS546
from drivers.parts.tps546_config import Tps546Config

__all__ = [
    "BOARD_KINDS",
    "BOARD_VERSIONS",
    "DS4432U",
    "EMC2101",
    "INA260",
    "TPS546",
    "BoardPower",
    "BoardVersion",
    "PowerError",
    "Telemetry",
    "Tps546Config",
    "Tps546Power",
    "UltraPower",
    "board_power",
    "board_version",
]
