"""Device side of the ``bitaxe-raw`` USB control channel (pure: bytes in, reply bytes out).

Request ``[len lo][len hi][id][bus=00][page][cmd][data...]`` with ``len`` the whole packet; reply
``[len LE][id][payload...]`` with ``len`` the whole reply (the firmware's ``res.len() + 3``); error
``[len LE][id] FF [code]`` (bm1366.md; codes 0x10 timeout, 0x11 invalid, 0x12 denied/overflow, 0x13 fault).
Pages: 0x05 I2C (0x10 set bus frequency u32 LE, 0x20 write ``[addr, bytes...]``, 0x30 read ``[addr, n]``,
0x40 write-then-read ``[addr, bytes..., n]``); 0x06 GPIO (cmd = pin; ``[level]`` sets, empty gets; pin 0 is
the active-low ASIC reset; reply ``[level]``); 0x07 ADC (cmd 0x50 reads VDD, u16 LE millivolts).
An I2C transaction to an address with no device answers error 0x10 (the bus times out on a NACK).
"""

from __future__ import annotations

from simulator.chain import ChainCore
from simulator.i2c_devices import I2CDevice, board_devices

PAGE_I2C = 0x05
PAGE_GPIO = 0x06
PAGE_ADC = 0x07
ERR_TIMEOUT = 0x10
ERR_INVALID = 0x11
ERR_DENIED = 0x12
ERR_FAULT = 0x13
#: Largest request the firmware buffers (4 KiB USB buffer, bitaxe-raw ``pipe_usb_read``).
MAX_PACKET = 4096
#: GPIO pin of the active-low ASIC reset line.
PIN_ASIC_RESET = 0
#: ADC VDD reading (mV): the ESP32's 3.3 V rail.
VDD_MV = 3300


class BitaxeRawDevice:
    """Parses control requests, drives the I2C models and the reset line, builds replies."""

    def __init__(self, core: ChainCore, kind: str = "gamma") -> None:
        self.core = core
        self.kind = kind
        self.devices: dict[int, I2CDevice] = board_devices(kind, core)
        self.gpio: dict[int, int] = {PIN_ASIC_RESET: 1}
        self.i2c_hz = 100_000
        self._buf = bytearray()
        self.requests = 0

    def feed(self, data: bytes, t: float) -> bytes:
        """Host bytes at simulated time ``t`` (s); returns the reply bytes for every complete request."""
        buf = self._buf
        buf += data
        out = bytearray()
        while len(buf) >= 2:
            n = int.from_bytes(buf[:2], "little")
            if n < 6 or n > MAX_PACKET:
                # Impossible length: answer "invalid" with id 0xFF (as the firmware does) and drop the buffer.
                out += self._error(0xFF, ERR_INVALID)
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
        try:
            if page == PAGE_I2C:
                return self._reply(rid, self._i2c(cmd, data, t))
            if page == PAGE_GPIO:
                return self._reply(rid, self._gpio(cmd, data, t))
            if page == PAGE_ADC and cmd == 0x50 and not data:
                return self._reply(rid, VDD_MV.to_bytes(2, "little"))
        except _Error as exc:
            return self._error(rid, exc.code)
        return self._error(rid, ERR_INVALID)

    def _i2c(self, cmd: int, data: bytes, t: float) -> bytes:
        if cmd == 0x10 and len(data) == 4:
            self.i2c_hz = int.from_bytes(data, "little")
            return b""
        if cmd not in (0x20, 0x30, 0x40) or not data:
            raise _Error(ERR_INVALID)
        dev = self.devices.get(data[0])
        if dev is None:
            raise _Error(ERR_TIMEOUT)
        if cmd == 0x20:
            dev.write(data[1:], t)
            return b""
        if len(data) < 2 or data[-1] == 0:
            raise _Error(ERR_INVALID)
        if cmd == 0x40:
            dev.write(data[1:-1], t)
        elif len(data) != 2:
            raise _Error(ERR_INVALID)
        return dev.read(data[-1], t)

    def _gpio(self, pin: int, data: bytes, t: float) -> bytes:
        if len(data) > 1:
            raise _Error(ERR_INVALID)
        if data:
            level = 1 if data[0] else 0
            self.gpio[pin] = level
            if pin == PIN_ASIC_RESET:
                self.core.set_reset_line(bool(level), t)
        return bytes([self.gpio.get(pin, 0)])

    @staticmethod
    def _reply(rid: int, payload: bytes) -> bytes:
        return (len(payload) + 3).to_bytes(2, "little") + bytes([rid]) + payload

    @staticmethod
    def _error(rid: int, code: int) -> bytes:
        return (5).to_bytes(2, "little") + bytes([rid, 0xFF, code])


class _Error(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"bitaxe-raw error 0x{code:02x}")
        self.code = code
