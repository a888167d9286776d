"""Client for the ``bitaxe-raw`` USB control channel: I2C, the ASIC reset GPIO, the ADC.

The bytes (both reply-length conventions, both error shapes) are in :mod:`drivers.bitaxe_raw_codec` and
docs/drivers.md. One request is outstanding at a time; every error reply raises :class:`BitaxeRawError`
naming the request, a reply that is not what the request asks for raises :class:`I2CError`, no reply in time
raises :class:`ControlTimeout`, and in every case the next request starts clean (a late reply is skipped by
its id, garbage is dropped a byte at a time).
"""

from __future__ import annotations

import asyncio
import logging

from drivers.bitaxe_raw_codec import (
    ADC_READ_VDD,
    ERROR_NAMES,
    I2C_READ,
    I2C_SET_FREQ,
    I2C_WRITE,
    I2C_WRITE_READ,
    PAGE_ADC,
    PAGE_GPIO,
    PAGE_I2C,
    Convention,
    Expect,
    ReplyFramer,
    encode_request,
)
from drivers.i2c import I2CError, check_addr
from drivers.transport.base import Transport

__all__ = [
    "ADC_FULL_SCALE_MV",
    "ADC_MAX_COUNT",
    "PIN_ASIC_RESET",
    "BitaxeRaw",
    "BitaxeRawError",
    "ControlTimeout",
    "adc_counts_to_mv",
    "encode_request",
]

log = logging.getLogger(__name__)

#: Reply wait (s): an I2C transaction at 100 kHz is < 5 ms; USB round trips add a few ms.
REPLY_TIMEOUT_S = 0.5
#: Request ids cycle 0..254 (0xFF marks the firmware's replies to requests it could not parse).
ID_MODULO = 255
#: GPIO pin of the active-low ASIC reset line.
PIN_ASIC_RESET = 0
#: The ESP32-S3 ADC (12 bit, 11 dB attenuation as bitaxe-raw sets it) spans about 0-3100 mV over 0-4095
#: counts (ESP-IDF ADC guide); uncalibrated, so a few percent off on a given chip.
ADC_MAX_COUNT = 4095
ADC_FULL_SCALE_MV = 3100.0


def adc_counts_to_mv(counts: int) -> float:
    """Nominal millivolts of a raw ADC reading (linear, uncalibrated: ESP-Miner calibrates per chip)."""
    return counts * ADC_FULL_SCALE_MV / ADC_MAX_COUNT


class BitaxeRawError(I2CError):
    """The device answered with an error reply: ``code`` (simple error) or ``message`` (ASCII)."""

    def __init__(self, request: str, code: int | None = None, message: str | None = None) -> None:
        self.code = code
        self.message = message
        self.request = request
        if message is not None:
            self.name = "message"
            what = f'"{message}"'
        else:
            self.name = ERROR_NAMES.get(code if code is not None else -1, "unknown")
            what = f"0x{code or 0:02X} ({self.name})"
        super().__init__(f"bitaxe-raw error {what} on {request}")


class ControlTimeout(TimeoutError):
    """No reply with the request's id arrived in time."""


class BitaxeRaw:
    """Async control-channel client over a transport; implements :class:`drivers.i2c.I2CBus` and ResetLine.

    ``convention``: the reply-length convention to assume where the bytes cannot tell (None: learn it from
    the replies; it follows every unambiguous reply, so a wrong guess never sticks).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout_s: float = REPLY_TIMEOUT_S,
        convention: Convention | None = None,
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.framer = ReplyFramer(convention)
        self._next_id = 0
        self._lock = asyncio.Lock()

    @property
    def convention(self) -> Convention | None:
        """The reply-length convention learned so far (None: not yet seen)."""
        return self.framer.convention

    async def request(self, page: int, cmd: int, data: bytes, expect: Expect, what: str = "") -> bytes:
        """Send one request and return its success payload (``expect``: what that payload looks like)."""
        async with self._lock:
            rid = self._next_id
            self._next_id = (self._next_id + 1) % ID_MODULO
            desc = f"{what + ' ' if what else ''}(page 0x{page:02X} cmd 0x{cmd:02X} id {rid})"
            framer = self.framer
            await self.transport.write(encode_request(rid, page, cmd, data))
            try:
                async with asyncio.timeout(self.timeout_s):
                    while (reply := framer.take(rid, expect)) is None:
                        framer.feed((await self.transport.read()).data)
            except TimeoutError:
                # a reply read on time (by the transport's reader thread) but not yet seen by a late loop
                # is no timeout: take what was already read before deciding
                read_nowait = getattr(self.transport, "read_nowait", None)
                reply = None
                while reply is None and read_nowait is not None and (batch := read_nowait()) is not None:
                    framer.feed(batch.data)
                    reply = framer.take(rid, expect)
                if reply is None:
                    reply = framer.take(rid, expect, final=True)
                if reply is None:
                    framer.forget(rid, expect)
                    if framer.buf:
                        framer.buf.pop(0)  # an unfinished head must not block the next request
                    raise ControlTimeout(f"bitaxe-raw: no reply to {desc} in {self.timeout_s} s") from None
            if not reply.ok:
                raise BitaxeRawError(desc, reply.code, reply.message)
            if not expect.valid(reply.payload):
                raise I2CError(f"bitaxe-raw: unexpected reply {reply.payload.hex(' ')} to {desc}")
            return reply.payload

    # ---- I2C ---------------------------------------------------------------------------------------------
    async def set_i2c_frequency(self, hz: int) -> None:
        """Set the I2C bus clock (Hz); the firmware echoes it."""
        if not 1_000 <= hz <= 1_000_000:
            raise ValueError(f"I2C frequency must be 1 kHz..1 MHz, got {hz}")
        echo = hz.to_bytes(4, "little")
        await self.request(PAGE_I2C, I2C_SET_FREQ, echo, Expect(4, (echo,)), f"I2C clock {hz} Hz")

    async def write(self, addr: int, data: bytes) -> None:
        check_addr(addr)
        if len(data) > 255:
            raise ValueError(f"I2C write of {len(data)} bytes: at most 255")
        await self.request(
            PAGE_I2C,
            I2C_WRITE,
            bytes([addr]) + data,
            Expect(1, (bytes([len(data)]),)),
            _i2c("write", addr, data),
        )

    async def read(self, addr: int, n: int) -> bytes:
        check_addr(addr)
        _check_n(n)
        return await self.request(PAGE_I2C, I2C_READ, bytes([addr, n]), Expect(n), _i2c("read", addr, b"", n))

    async def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        check_addr(addr)
        _check_n(n)
        if len(data) > 255:
            raise ValueError(f"I2C write of {len(data)} bytes: at most 255")
        what = _i2c("write-read", addr, data, n)
        return await self.request(
            PAGE_I2C, I2C_WRITE_READ, bytes([addr]) + data + bytes([n]), Expect(n), what
        )

    # ---- GPIO / ADC --------------------------------------------------------------------------------------
    @property
    def has_reset(self) -> bool:
        return True

    async def set_gpio(self, pin: int, level: bool) -> None:
        """Drive GPIO ``pin`` high (True) or low; the firmware answers the level set."""
        lvl = bytes([1 if level else 0])
        await self.request(PAGE_GPIO, pin, lvl, Expect(1, (lvl,)), f"GPIO {pin} := {lvl[0]}")

    async def get_gpio(self, pin: int) -> bool:
        """The level of GPIO ``pin``."""
        return (
            await self.request(PAGE_GPIO, pin, b"", Expect(1, (b"\x00", b"\x01")), f"GPIO {pin} get")
        ) == b"\x01"

    async def set_reset(self, asserted: bool) -> None:
        """Hold the ASICs in reset (the active-low reset line driven low) or release them."""
        await self.set_gpio(PIN_ASIC_RESET, not asserted)

    async def read_vdd_counts(self) -> int:
        """The ADC's raw reading (counts 0..4095, u16 LE) of bitaxe-raw's "VDD" pin (GPIO2: the core-voltage
        sense ESP-Miner reads as Vcore); :func:`adc_counts_to_mv` converts."""
        payload = await self.request(PAGE_ADC, ADC_READ_VDD, b"", Expect(2), "ADC VDD")
        return int.from_bytes(payload, "little")

    async def read_vdd_mv(self) -> float:
        """The ADC reading in nominal millivolts (see :func:`adc_counts_to_mv`)."""
        return adc_counts_to_mv(await self.read_vdd_counts())


def _i2c(op: str, addr: int, data: bytes, n: int | None = None) -> str:
    shown = data[:4].hex(" ") + (" ..." if len(data) > 4 else "")
    tail = f" [{shown}]" if data else ""
    return f"I2C {op} 0x{addr:02X}{tail}{'' if n is None else f' -> {n} B'}"


def _check_n(n: int) -> None:
    if not 1 <= n <= 255:
        raise ValueError(f"read length must be 1..255, got {n}")
