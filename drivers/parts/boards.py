"""Bitaxe board versions: regulator, chip-temperature sensor and limits, as ESP-Miner defines them.

Source: ESP-Miner ``main/device_config.h`` (``default_configs``: ``EMC2101``, ``emc_internal_temp``,
``temp_offset``, ``emc_ideality_factor``/``emc_beta_compensation``, ``DS4432U``/``INA260``/``TPS546``; the
ASIC's ``voltage_options``), ``main/thermal/thermal.c`` (``Thermal_get_chip_temp``: the EMC2101 internal
sensor where ``emc_internal_temp``, else the external diode, both + ``temp_offset``) and
``main/tasks/power_management_task.c`` (``THROTTLE_TEMP`` 75 C chip, ``TPS546_THROTTLE_TEMP`` 105 C).

Only boards with one EMC2101 and one regulator (DS4432U+INA260 or TPS546) and a single voltage domain are
listed: the parts this package drives. Hex/SupraHex (EMC2302, TMP1075, 3 domains) and GammaTurbo (EMC2103,
two phases) are not.
"""

from __future__ import annotations

from dataclasses import dataclass

#: ESP-Miner voltage_options per ASIC (mV) in device_config.h.
VOLTAGE_OPTIONS_MV: dict[str, tuple[int, ...]] = {
    "BM1366": (1100, 1150, 1200, 1250, 1300),
    "BM1368": (1100, 1150, 1166, 1200, 1250, 1300),
    "BM1370": (1000, 1060, 1100, 1150, 1200, 1250),
}
#: power_management_task.c: chip overheat above 75 C, regulator above 105 C.
CHIP_THROTTLE_C = 75.0
VR_THROTTLE_C = 105.0


@dataclass(frozen=True, slots=True)
class BoardVersion:
    """One ESP-Miner board version. Volts, deg C."""

    version: str
    family: str
    asic: str
    regulator: str  # "ds4432u" (with INA260) or "tps546"
    chip_temp_internal: bool  # EMC2101 internal sensor (True) or the external diode (False)
    temp_offset_c: float
    emc_ideality: int | None = None  # EMC2101 0x17 / 0x18 written at start-up when set
    emc_beta: int | None = None

    @property
    def preset_min_v(self) -> float:
        """Lowest of the firmware's voltage presets for this board's ASIC (V)."""
        return min(VOLTAGE_OPTIONS_MV[self.asic]) / 1000.0

    @property
    def preset_max_v(self) -> float:
        """Highest of the firmware's voltage presets for this board's ASIC (V)."""
        return max(VOLTAGE_OPTIONS_MV[self.asic]) / 1000.0

    @property
    def chip_sensor(self) -> str:
        """Which sensor the firmware (and the overheat trip) takes the chip temperature from."""
        where = "internal sensor" if self.chip_temp_internal else "external diode"
        return f"EMC2101 {where} + {self.temp_offset_c:g} C"


def _ultra(v: str, asic: str = "BM1366", family: str = "Ultra") -> BoardVersion:
    return BoardVersion(v, family, asic, "ds4432u", chip_temp_internal=True, temp_offset_c=5.0)


def _tps(v: str, family: str, asic: str, ideality: int | None = None) -> BoardVersion:
    beta = None if ideality is None else 0x00
    return BoardVersion(v, family, asic, "tps546", False, 0.0, emc_ideality=ideality, emc_beta=beta)


BOARD_VERSIONS: dict[str, BoardVersion] = {
    b.version: b
    for b in (
        *(_ultra(v) for v in ("201", "202", "203", "204", "205")),
        _tps("207", "Ultra", "BM1366"),
        *(_ultra(v, "BM1368", "Supra") for v in ("400", "401")),
        _tps("402", "Supra", "BM1368"),
        _tps("403", "Supra", "BM1368"),
        *(_tps(v, "Gamma", "BM1370", ideality=0x24) for v in ("600", "601", "602", "603")),
    )
}

#: Board kinds (the daemon's ``kind`` and :func:`drivers.parts.board_power`) -> a representative version.
KIND_VERSIONS: dict[str, str] = {"ultra": "204", "ultra207": "207", "supra": "402", "gamma": "601"}


def board_version(kind_or_version: str) -> BoardVersion:
    """The :class:`BoardVersion` for a kind (``ultra``, ``ultra207``, ``supra``, ``gamma``) or a version
    number (``"201"``); ValueError naming the known ones otherwise."""
    key = kind_or_version.strip().lower()
    key = KIND_VERSIONS.get(key, key)
    if key not in BOARD_VERSIONS:
        raise ValueError(
            f"unknown board kind {kind_or_version!r}; known: {sorted(KIND_VERSIONS)} or a version in"
            f" {sorted(BOARD_VERSIONS)}"
        )
    return BOARD_VERSIONS[key]


#: The regulator design each daemon board kind drives.
KIND_REGULATORS: dict[str, str] = {"ultra": "ds4432u", "gamma": "tps546"}


def version_mismatch(kind: str, version: str) -> str | None:
    """Why board ``version`` cannot be used with daemon board ``kind`` (None when it can, or no version)."""
    if not version:
        return None
    b = BOARD_VERSIONS.get(version)
    if b is None:
        return f"unknown board version {version!r}; known: {', '.join(sorted(BOARD_VERSIONS))}"
    want = KIND_REGULATORS.get(kind)
    if want != b.regulator:
        kinds = [k for k, r in KIND_REGULATORS.items() if r == b.regulator]
        return f"version {version} ({b.family}, {b.regulator}) needs kind {' or '.join(kinds)}, not {kind!r}"
    return None
