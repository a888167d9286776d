"""Client for the ``bitaxe-raw`` USB control channel: I2C, the ASIC reset GPIO, the ADC.

Request ``[len lo][len hi][id][bus=00][page][cmd][data...]`` with ``len`` the whole packet. Reply
``[len LE][id][payload]``; error ``[len LE][id] FF [code]``. Sources disagree on whether a reply's ``len``
counts the whole reply (``payload + 3``, as the emulator does) or only the payload (a public Rust host's
reading of the firmware): ``length_mode="auto"`` (default) tells them apart from the payload size each
request expects and then sticks to what it learned; ``"packet"``/``"payload"`` force one.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Literal

from drivers.i2c import I2CError, check_addr
from drivers.transport.base import Transport

log = logging.getLogger(__name__)

#: Reply wait (s): an I2C transaction at 100 kHz is < 5 ms; USB round trips add a few ms.
REPLY_TIMEOUT_S = 0.5
#: The firmware buffers at most this many bytes per packet (bitaxe-raw USB buffer).
MAX_PACKET = 4096
#: Request ids cycle 0..254 (0xFF is used by the firmware for replies to unparseable requests).
ID_MODULO = 255

PAGE_I2C = 0x05
PAGE_GPIO = 0x06
PAGE_ADC = 0x07
I2C_SET_FREQ = 0x10
I2C_WRITE = 0x20
I2C_READ = 0x30
I2C_WRITE_READ = 0x40
ADC_READ_VDD = 0x50
#: GPIO pin of the active-low ASIC reset line.
PIN_ASIC_RESET = 0
ERROR_MARKER = 0xFF

LengthMode = Literal["auto", "packet", "payload"]


class ErrorCode(enum.IntEnum):
    """Error codes of an ``FF`` reply."""

    TIMEOUT = 0x10
    INVALID = 0x11
    DENIED = 0x12  # also "buffer overflow" in some firmware builds
    FAULT = 0x13


class BitaxeRawError(I2CError):
    """The device answered with an error reply; ``code`` is the raw byte, ``name`` its meaning."""

    def __init__(self, code: int, request: str) -> None:
        self.code = code
        try:
            self.name = ErrorCode(code).name.lower()
        except ValueError:
            self.name = "unknown"
        super().__init__(f"bitaxe-raw error 0x{code:02X} ({self.name}) on {request}")


class ControlTimeout(TimeoutError):
    """No reply with the request's id arrived in time."""


def encode_request(rid: int, page: int, cmd: int, data: bytes = b"", bus: int = 0) -> bytes:
    """One request packet (``len`` counts the whole packet)."""
    n = 6 + len(data)
    if n > MAX_PACKET:
        raise ValueError(f"request of {n} bytes exceeds {MAX_PACKET}")
    return n.to_bytes(2, "little") + bytes([rid & 0xFF, bus, page, cmd]) + data


class BitaxeRaw:
    """Async control-channel client over a transport; implements :class:`drivers.i2c.I2CBus` and ResetLine.

    One request is outstanding at a time (a lock); late replies to timed-out requests are discarded by id.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        timeout_s: float = REPLY_TIMEOUT_S,
        length_mode: LengthMode = "auto",
    ) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.length_mode: LengthMode = length_mode
        self._buf = bytearray()
        self._next_id = 0
        self._lock = asyncio.Lock()

    # ---- framing ---------------------------------------------------------------------------------------
    def _split(self, expected: frozenset[int]) -> tuple[int, bytes] | None:
        """Take one whole reply ``(id, payload)`` off the buffer, or None when more bytes are needed."""
        buf = self._buf
        if len(buf) < 3:
            return None
        n = int.from_bytes(buf[:2], "little")
        is_err = len(buf) >= 4 and buf[3] == ERROR_MARKER
        mode = self.length_mode
        if mode == "auto":
            as_packet = n >= 3 and ((n - 3) in expected or (is_err and n == 5))
            as_payload = n in expected or (is_err and n == 2)
            if as_packet and not as_payload:
                mode = "packet"
            elif as_payload and not as_packet:
                mode = "payload"
            else:
                mode = "packet"  # ambiguous or unexpected: the documented reading
        total = n if mode == "packet" else n + 3
        if total < 3 or total > MAX_PACKET:
            log.warning("bitaxe-raw: impossible reply length %d; dropping %d buffered bytes", n, len(buf))
            buf.clear()
            return None
        if len(buf) < total:
            return None
        if self.length_mode == "auto" and (n - 3 in expected) != (n in expected):
            self.length_mode = mode
            log.debug("bitaxe-raw: reply length counts the %s", mode)
        rid, payload = buf[2], bytes(buf[3:total])
        del buf[:total]
        return rid, payload

    async def request(self, page: int, cmd: int, data: bytes = b"", expect: tuple[int, ...] = (0,)) -> bytes:
        """Send one request and return its reply payload (``expect``: payload sizes it may have)."""
        what = f"page 0x{page:02X} cmd 0x{cmd:02X}"
        expected = frozenset(expect)
        async with self._lock:
            rid = self._next_id
            self._next_id = (self._next_id + 1) % ID_MODULO
            await self.transport.write(encode_request(rid, page, cmd, data))
            try:
                async with asyncio.timeout(self.timeout_s):
                    while True:
                        reply = self._split(expected)
                        if reply is None:
                            batch = await self.transport.read()
                            self._buf += batch.data
                            continue
                        got, payload = reply
                        if got != rid:
                            log.debug("bitaxe-raw: discarding reply id %d (waiting for %d)", got, rid)
                            continue
                        if len(payload) == 2 and payload[0] == ERROR_MARKER:
                            raise BitaxeRawError(payload[1], what)
                        return payload
            except TimeoutError:
                raise ControlTimeout(
                    f"bitaxe-raw: no reply to {what} (id {rid}) in {self.timeout_s} s"
                ) from None

    # ---- I2C ---------------------------------------------------------------------------------------------
    async def set_i2c_frequency(self, hz: int) -> None:
        """Set the I2C bus clock (Hz)."""
        if not 1_000 <= hz <= 1_000_000:
            raise ValueError(f"I2C frequency must be 1 kHz..1 MHz, got {hz}")
        await self.request(PAGE_I2C, I2C_SET_FREQ, hz.to_bytes(4, "little"))

    async def write(self, addr: int, data: bytes) -> None:
        check_addr(addr)
        await self.request(PAGE_I2C, I2C_WRITE, bytes([addr]) + data)

    async def read(self, addr: int, n: int) -> bytes:
        check_addr(addr)
        _check_n(n)
        return _exact(await self.request(PAGE_I2C, I2C_READ, bytes([addr, n]), (n,)), n, addr)

    async def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        check_addr(addr)
        _check_n(n)
        payload = await self.request(PAGE_I2C, I2C_WRITE_READ, bytes([addr]) + data + bytes([n]), (n,))
        return _exact(payload, n, addr)

    # ---- GPIO / ADC --------------------------------------------------------------------------------------
    @property
    def has_reset(self) -> bool:
        return True

    async def set_gpio(self, pin: int, level: bool) -> None:
        """Drive GPIO ``pin`` high (True) or low."""
        await self.request(PAGE_GPIO, pin, bytes([1 if level else 0]), (0, 1))

    async def set_reset(self, asserted: bool) -> None:
        """Hold the ASICs in reset (the active-low reset line driven low) or release them."""
        await self.set_gpio(PIN_ASIC_RESET, not asserted)

    async def read_vdd_mv(self) -> int:
        """The ADC's VDD reading, mV (u16 little-endian)."""
        payload = await self.request(PAGE_ADC, ADC_READ_VDD, b"", (2,))
        if len(payload) != 2:
            raise I2CError(f"ADC reply of {len(payload)} bytes, expected 2")
        return int.from_bytes(payload, "little")


def _check_n(n: int) -> None:
    if not 1 <= n <= 255:
        raise ValueError(f"read length must be 1..255, got {n}")


def _exact(payload: bytes, n: int, addr: int) -> bytes:
    if len(payload) != n:
        raise I2CError(f"I2C 0x{addr:02X}: got {len(payload)} bytes, asked for {n}")
    return payload
