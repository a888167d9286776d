"""A board's power, fan, reset line and sensors as seen by the supervisor (:class:`BoardControl`).

* :class:`NullControl`: a generic board without a control channel (nothing to set, nothing measured).
* :class:`PartsControl`: a Bitaxe behind the ``bitaxe-raw`` firmware: the control port (a serial transport)
  carries I2C to the regulator and fan controller (:mod:`drivers.parts`) and the ASIC reset GPIO. The same
  class drives the emulated boards of ``--simulate`` (the simulator emulates the firmware and the parts).
* :class:`BoardSpec` / :func:`serial_factory`: how the daemon reaches one board (ports, control, timing).

A TPS546 board's STATUS_WORD is read with every telemetry: a latched fault (over-current, over-voltage,
over-temperature, or the output off while commanded on, on two reads in a row) becomes
``Telemetry.regulator_fault`` (:func:`drivers.parts.tps546.latch_fault`), which the safety envelope turns into
its ``fault`` state; an output current above the regulator's configured IOUT_OC_WARN becomes a one-time
``Telemetry.warnings`` line.

Fan duty and tach are not safety inputs, so they are not in :class:`~daemon.safety.Telemetry`: a control
that measures them keeps the reading taken with the last telemetry in ``last_fan`` (:func:`fan_reading`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from daemon.config import BoardConfig
from daemon.safety import Telemetry
from drivers.bitaxe_raw import BitaxeRaw
from drivers.chain import ChainTiming
from drivers.i2c import I2CError
from drivers.parts.board import BoardPower, Tps546Power, board_power
from drivers.parts.emc2101 import EMC2101
from drivers.parts.errors import PowerError
from drivers.parts.tps546 import latch_fault, status_flags
from drivers.transport import ResetLine, SerialTransport, Transport, TransportError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FanReading:
    """Fan state read with the telemetry: ``duty`` 0..1 (PWM setting), ``rpm`` from the tach (None: none)."""

    duty: float | None = None
    rpm: float | None = None


def fan_reading(control: object) -> FanReading | None:
    """The fan reading a control took with its last telemetry (None when it does not measure the fan)."""
    fan = getattr(control, "last_fan", None)
    return fan if isinstance(fan, FanReading) else None


class BoardControl(Protocol):
    """Power, fan and sensors of a board."""

    @property
    def reset_line(self) -> ResetLine | None:
        """The ASIC reset line when the host can drive one."""
        ...

    async def connect(self) -> None:
        """(Re)open the control channel; raises :class:`TransportError` when it cannot."""
        ...

    async def close(self) -> None: ...

    async def set_core_voltage(self, volts: float) -> None:
        """Core voltage in V; 0 switches the regulator off."""
        ...

    async def set_fan(self, pct: float) -> None:
        """Fan duty 0..100 %."""
        ...

    async def read_telemetry(self) -> Telemetry:
        """Temperatures (C), power (W), input voltage (V); None for what is not measured."""
        ...


class NullControl:
    """A generic board without a control channel."""

    @property
    def reset_line(self) -> ResetLine | None:
        return None

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def set_core_voltage(self, volts: float) -> None:
        return None

    async def set_fan(self, pct: float) -> None:
        return None

    async def read_telemetry(self) -> Telemetry:
        return Telemetry()


class PartsControl:
    """A bitaxe-raw board: ``factory()`` makes the control-port transport, ``kind`` picks the parts.

    I2C and power errors become :class:`TransportError` (the supervisor reconnects: a board whose regulator
    does not answer is not safe to run).
    """

    def __init__(self, factory: Callable[[], Transport], kind: str) -> None:
        self.factory = factory
        self.kind = kind
        self._transport: Transport | None = None
        self._raw: BitaxeRaw | None = None
        self._power: BoardPower | None = None
        self._off_warned = False
        self.last_fan: FanReading | None = None
        # the output as commanded (True: on) and a count of commands, so a status read that overlaps a
        # switch is not taken for a fault (see read_telemetry)
        self._output_on = False
        self._output_cmds = 0
        self._iout_warned = False
        self._off_seen = False  # the previous steady read showed the output off (and nothing else)

    @property
    def reset_line(self) -> ResetLine | None:
        return self._raw

    async def connect(self) -> None:
        await self.close()
        t = self.factory()
        await t.open()
        self._transport = t
        self._raw = BitaxeRaw(t)
        self._output_on = False  # the start-up configuration switches a TPS546 output off
        power = board_power(self.kind, self._raw)
        try:  # the parts' start-up configuration, verified; a TPS546 output stays off until it is
            await power.start()
        except (I2CError, PowerError, TimeoutError) as exc:
            raise TransportError(f"board parts start-up failed: {exc}") from exc
        self._power = power

    async def close(self) -> None:
        t, self._transport, self._raw, self._power = self._transport, None, None, None
        if t is not None:
            await t.close()

    def _parts(self) -> BoardPower:
        if self._power is None:
            raise TransportError("control channel not connected")
        return self._power

    async def set_core_voltage(self, volts: float) -> None:
        p = self._parts()
        self._output_cmds += 1
        self._off_seen = False
        if volts <= 0.0:
            self._output_on = False  # before the write: an OFF bit read from here on is expected
        try:
            if volts <= 0.0:
                try:
                    await p.core_voltage_off()
                except PowerError as exc:  # e.g. an Ultra without a switchable supply
                    if not self._off_warned:
                        log.warning("core supply cannot switch off (%s): reset held, PLL at its floor", exc)
                    self._off_warned = True
            else:
                await p.set_core_voltage(volts)
                self._output_on = True  # after the write: the output is only expected on once commanded
        except (I2CError, PowerError, TimeoutError) as exc:
            raise TransportError(f"core voltage {volts:.3f} V not set: {exc}") from exc
        finally:
            self._output_cmds += 1

    async def set_fan(self, pct: float) -> None:
        try:
            await self._parts().set_fan_percent(pct)
        except (I2CError, PowerError, TimeoutError) as exc:
            raise TransportError(f"fan not set: {exc}") from exc

    async def read_telemetry(self) -> Telemetry:
        parts = self._parts()
        on, cmds = self._output_on, self._output_cmds
        try:
            t = await parts.read_telemetry()
        except (I2CError, PowerError, TimeoutError) as exc:
            raise TransportError(f"telemetry read failed: {exc}") from exc
        rpm: float | None = None
        fan = getattr(parts, "fan", None)  # the EMC2101 of UltraPower / Tps546Power
        if isinstance(fan, EMC2101):
            try:
                rpm = await fan.read_fan_rpm()
            except I2CError:  # a fan controller NACKing its tach is not a reason to reconnect
                rpm = None
        self.last_fan = FanReading(None if t.fan_pct is None else t.fan_pct / 100.0, rpm)
        steady = on and cmds == self._output_cmds  # commanded on before and after, no switch in between
        fault = None if t.status_word is None else latch_fault(t.status_word, steady)
        if fault == "regulator_output_off":  # an output still starting (TON_RISE) reads OFF: needs two reads
            fault, self._off_seen = (fault if self._off_seen else None), True
        else:
            self._off_seen = False
        if fault is not None:
            log.error(
                "regulator fault %s: STATUS_WORD 0x%04X %s",
                fault,
                t.status_word,
                status_flags(t.status_word or 0),
            )
        return Telemetry(
            chip_temp_c=t.chip_temp_c,
            regulator_temp_c=t.vr_temp_c,
            power_w=t.power_w,
            input_voltage_v=t.vin,
            output_current_a=t.iout,
            regulator_fault=fault,
            warnings=self._iout_warning(parts, t.iout),
        )

    def _iout_warning(self, parts: BoardPower, iout: float | None) -> tuple[str, ...]:
        """One line the first time the output current exceeds the regulator's IOUT_OC_WARN (again after it
        fell back below): the daemon has no current model, so this is the run-time check."""
        if not isinstance(parts, Tps546Power) or iout is None:
            return ()
        warn = parts.config.iout_oc_warn_limit
        if iout <= warn:
            self._iout_warned = False
            return ()
        if self._iout_warned:
            return ()
        self._iout_warned = True
        fault = parts.config.iout_oc_fault_limit
        return (
            f"output current {iout:.1f} A above the regulator's IOUT_OC_WARN {warn:g} A"
            f" (latch-off at {fault:g} A)",
        )


@dataclass
class BoardSpec:
    """How to reach one board: config, data-port transport factory, control, share-check scale, timing."""

    config: BoardConfig
    factory: Callable[[], Transport]
    control: BoardControl
    valid_scale: float = 1.0
    chain_timing: ChainTiming = field(default_factory=ChainTiming)


def serial_factory(path: str, clock: Callable[[], int] = time.monotonic_ns) -> Callable[[], Transport]:
    """A factory of fresh serial transports on ``path`` (the reconnector opens a new one each time)."""

    def make() -> Transport:
        return SerialTransport(path, clock=clock)

    return make
