"""Device side of the ``bitaxe-raw`` USB control channel (pure: bytes in, reply bytes out).

Replies are built as the firmware builds them (:mod:`drivers.bitaxe_raw_codec`, docs/emulator.md), in one of
three published variants (:data:`FIRMWARES`, ``firmware=``):

* ``original``: bitaxe-raw as first published (April 2025): a success's length field is the payload length;
  a request that cannot be parsed is answered with id ``FF``; a write over 256 bytes is error 0x12.
* ``packet``: later ESP32 builds: length = payload + 3; unparseable requests answered with id ``FF``; a write
  over 256 bytes is the message error ``FF "Buf"``.
* ``latest``: the newest builds and the RP2040 BIRDS port: length = payload + 3; unparseable requests are
  answered with their own id (an impossible length with whatever byte 2 holds, and the buffer is dropped).

In every variant errors are ``04 00 <id> <code>`` or ``[len LE] <id> FF <ASCII>``; an I2C transaction to an
address with no device (a NACK) is the message error ``I2C Write Error`` / ``I2C Read Error`` /
``I2C WriteRead Error``. Pages: 0x05 I2C (0x10 set clock u32 LE, echoed; 0x20 write ``[addr, bytes...]``,
answers ``[count]``; 0x30 read ``[addr, n]``; 0x40 write-then-read ``[addr, bytes..., n]``); 0x06 GPIO (cmd =
pin; ``[level]`` sets, empty gets; answers ``[level]``; pin 0 the active-low ASIC reset); 0x07 ADC (cmd 0x50:
u16 LE raw counts of the core-voltage sense, 12 bit over 0-3100 mV).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.bitaxe_raw_codec import (
    MAX_REQUEST,
    PACKET,
    PAGE_ADC,
    PAGE_GPIO,
    PAGE_I2C,
    PARSE_ERROR_ID,
    PAYLOAD,
    Convention,
    encode_error,
    encode_reply,
)
from simulator.chain import ChainCore
from simulator.i2c_devices import I2CDevice, board_devices

ERR_INVALID = 0x11
ERR_OVERFLOW = 0x12
#: GPIO pin of the active-low ASIC reset line.
PIN_ASIC_RESET = 0
#: ADC: 12-bit counts over 0..3100 mV (ESP32-S3 at 11 dB attenuation, as bitaxe-raw configures it).
ADC_MAX_COUNT = 4095
ADC_FULL_SCALE_MV = 3100.0
#: Largest I2C write the firmware buffers (``Vec<u8, 256>``).
MAX_I2C_WRITE = 256


@dataclass(frozen=True, slots=True)
class Firmware:
    """One published bitaxe-raw variant (see the module docstring)."""

    name: str
    convention: Convention
    parse_error_own_id: bool
    overflow_message: bool


FIRMWARES = {
    "original": Firmware("original", PAYLOAD, parse_error_own_id=False, overflow_message=False),
    "packet": Firmware("packet", PACKET, parse_error_own_id=False, overflow_message=True),
    "latest": Firmware("latest", PACKET, parse_error_own_id=True, overflow_message=True),
}
DEFAULT_FIRMWARE = "original"


def adc_counts(volts: float) -> int:
    """Raw ADC counts for ``volts`` at the pin (clipped to the 12-bit range)."""
    return max(0, min(ADC_MAX_COUNT, round(volts * 1000.0 * ADC_MAX_COUNT / ADC_FULL_SCALE_MV)))


class BitaxeRawDevice:
    """Parses control requests, drives the I2C models and the reset line, builds replies."""

    def __init__(self, core: ChainCore, kind: str = "gamma", firmware: str = DEFAULT_FIRMWARE) -> None:
        if firmware not in FIRMWARES:
            raise ValueError(f"unknown bitaxe-raw firmware {firmware!r}; one of {', '.join(FIRMWARES)}")
        self.core = core
        self.kind = kind
        self.firmware = FIRMWARES[firmware]
        self.devices: dict[int, I2CDevice] = board_devices(kind, core)
        self.gpio: dict[int, int] = {PIN_ASIC_RESET: 1}
        self.i2c_hz = 100_000
        self._buf = bytearray()
        self.requests = 0
        self._nacks: dict[int, int] = {}

    def nack_reads(self, addr: int, n: int) -> None:
        """NACK the next ``n`` I2C reads (0x30/0x40) from ``addr`` (an injected fault)."""
        self._nacks[addr] = self._nacks.get(addr, 0) + n

    def feed(self, data: bytes, t: float) -> bytes:
        """Host bytes at simulated time ``t`` (s); returns the reply bytes for every complete request."""
        buf = self._buf
        buf += data
        out = bytearray()
        while len(buf) >= 2:
            n = int.from_bytes(buf[:2], "little")
            if n < 6 or n > MAX_REQUEST:
                # an impossible length: "invalid", and the buffer is dropped (the firmware resynchronises)
                rid = buf[2] if self.firmware.parse_error_own_id and len(buf) > 2 else PARSE_ERROR_ID
                out += encode_error(rid, ERR_INVALID)
                buf.clear()
                break
            if len(buf) < n:
                break
            packet = bytes(buf[:n])
            del buf[:n]
            self.requests += 1
            out += self.handle(packet, t)
        return bytes(out)

    def handle(self, packet: bytes, t: float) -> bytes:
        """One whole request -> its reply."""
        rid, page, cmd, data = packet[2], packet[4], packet[5], packet[6:]
        fw = self.firmware
        try:
            if page == PAGE_I2C:
                payload = self._i2c(cmd, data, t)
            elif page == PAGE_GPIO:
                payload = self._gpio(cmd, data, t)
            elif page == PAGE_ADC and cmd == 0x50 and not data:
                self.core.advance_physics(t)
                payload = adc_counts(self.core.physics.volts).to_bytes(2, "little")
            else:
                raise _ParseError(ERR_INVALID)
        except _ParseError as exc:
            rid = rid if fw.parse_error_own_id else PARSE_ERROR_ID
            if exc.code == ERR_OVERFLOW and fw.overflow_message:
                return encode_error(rid, message="Buf")
            return encode_error(rid, exc.code)
        except _Nack as exc:
            return encode_error(rid, message=exc.message)
        return encode_reply(rid, payload, fw.convention)

    def _i2c(self, cmd: int, data: bytes, t: float) -> bytes:
        if cmd == 0x10 and len(data) == 4:
            self.i2c_hz = int.from_bytes(data, "little")
            return data
        shape_ok = (cmd == 0x20 and len(data) >= 1) or (cmd == 0x30 and len(data) == 2)
        if not (shape_ok or (cmd == 0x40 and len(data) >= 2)):
            raise _ParseError(ERR_INVALID)
        if cmd in (0x20, 0x40) and len(data) - (1 if cmd == 0x20 else 2) > MAX_I2C_WRITE:
            raise _ParseError(ERR_OVERFLOW)
        dev = self.devices.get(data[0])
        if cmd == 0x20:
            if dev is None:
                raise _Nack("I2C Write Error")
            dev.write(data[1:], t)
            return bytes([len(data) - 1])
        if self._nacks.get(data[0], 0) > 0:
            self._nacks[data[0]] -= 1
            dev = None
        if dev is None:
            raise _Nack("I2C Read Error" if cmd == 0x30 else "I2C WriteRead Error")
        if cmd == 0x40:
            dev.write(data[1:-1], t)
        return dev.read(data[-1], t) if data[-1] else b""

    def _gpio(self, pin: int, data: bytes, t: float) -> bytes:
        if len(data) > 1:
            raise _ParseError(ERR_INVALID)
        if data:
            level = 1 if data[0] else 0
            self.gpio[pin] = level
            if pin == PIN_ASIC_RESET:
                self.core.set_reset_line(bool(level), t)
        return bytes([self.gpio.get(pin, 0)])


class _ParseError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"bitaxe-raw error 0x{code:02x}")
        self.code = code


class _Nack(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
