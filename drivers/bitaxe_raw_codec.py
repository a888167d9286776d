"""Bytes of the ``bitaxe-raw`` USB control channel, as the firmware builds them (pure; docs/drivers.md).

Request ``[len LE][id][bus=00][page][cmd][data...]``, ``len`` = the whole packet (6 + data). Replies, read
from the firmware's ``control/mod.rs`` (every published version):

* success ``[len LE][id][payload]``: ``len`` = the payload length in bitaxe-raw as first published (April
  2025, ``res.len()``: :data:`PAYLOAD`) and payload + 3 in later versions (the bitaxe-raw-bonanza line and the
  RP2040 BIRDS port, ``res.len() + 3``: :data:`PACKET`);
* error: the firmware builds ``[00 00 FF code]``, writes the buffer length into bytes 0-1 and then overwrites
  byte 2 with the request id, so a simple error is ``04 00 <id> <code>`` (no FF marker left) and a message
  error is ``[4 + m LE] <id> FF <m ASCII bytes>`` (e.g. ``"I2C Read Error"``). Both count the whole packet,
  in every version. A request the firmware cannot parse is answered with id ``FF`` (ESP32 versions) or the
  request's own id (later versions).

Success payloads: I2C set-frequency echoes the 4 frequency bytes, I2C write answers ``[bytes written]``, reads
return the bytes read, GPIO ``[level]`` (0/1), ADC ``u16 LE`` raw counts. I2C failures (a NACK) are message
errors. :class:`ReplyFramer` takes replies off a byte stream for one outstanding request, with either length
convention and either error shape, and resynchronises on garbage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

PAGE_I2C = 0x05
PAGE_GPIO = 0x06
PAGE_ADC = 0x07
I2C_SET_FREQ = 0x10
I2C_WRITE = 0x20
I2C_READ = 0x30
I2C_WRITE_READ = 0x40
ADC_READ_VDD = 0x50
#: The request-id byte of replies to requests the firmware could not parse (ESP32 versions).
PARSE_ERROR_ID = 0xFF
#: Byte 3 of a message error (the "extended" error code).
MESSAGE_MARKER = 0xFF
#: Largest request the firmware buffers (``pipe_usb_read``'s 4098-byte buffer).
MAX_REQUEST = 4096
#: Largest reply the firmware builds (``Vec<u8, 260>``).
MAX_REPLY = 260
#: Simple error codes (``CommandError``); 0x12 is "buffer overflow" in the first version, "denied" later.
ERROR_NAMES = {0x10: "timeout", 0x11: "invalid", 0x12: "denied", 0x13: "fault"}

Convention = Literal["payload", "packet"]
#: Success ``len`` = payload length (bitaxe-raw as first published).
PAYLOAD: Convention = "payload"
#: Success ``len`` = payload + 3, the whole packet (later versions).
PACKET: Convention = "packet"


def encode_request(rid: int, page: int, cmd: int, data: bytes = b"", bus: int = 0) -> bytes:
    """One request packet (``len`` counts the whole packet)."""
    n = 6 + len(data)
    if n > MAX_REQUEST:
        raise ValueError(f"request of {n} bytes exceeds {MAX_REQUEST}")
    return n.to_bytes(2, "little") + bytes([rid & 0xFF, bus, page, cmd]) + data


def encode_reply(rid: int, payload: bytes, convention: Convention) -> bytes:
    """A success reply as the firmware of ``convention`` writes it."""
    n = len(payload) + (3 if convention == PACKET else 0)
    return n.to_bytes(2, "little") + bytes([rid]) + payload


def encode_error(rid: int, code: int | None = None, message: str | None = None) -> bytes:
    """An error reply built the firmware's way: ``[00 00 FF code|FF msg]``, length, then byte 2 = id."""
    buf = bytearray(b"\x00\x00\xff")
    if message is None:
        buf.append(code if code is not None else 0x11)
    else:
        buf += b"\xff" + message.encode("ascii")
    buf[0:2] = len(buf).to_bytes(2, "little")
    buf[2] = rid
    return bytes(buf)


@dataclass(frozen=True, slots=True)
class Expect:
    """What a request's success payload looks like: ``size`` bytes, one of ``accept`` when known."""

    size: int
    accept: tuple[bytes, ...] | None = None

    def valid(self, payload: bytes) -> bool:
        return len(payload) == self.size and (self.accept is None or payload in self.accept)


@dataclass(frozen=True, slots=True)
class Reply:
    """One decoded reply: ``payload`` on success, else ``code`` (simple error) or ``message`` (0xFF)."""

    rid: int
    payload: bytes = b""
    code: int | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.code is None and self.message is None


def _message_like(text: bytes) -> bool:
    return bool(text) and all(0x20 <= b < 0x7F for b in text)


def _known_message(text: bytes) -> bool:
    """The firmware's own messages: ``Buf`` and ``... Error`` (used where data could look the same)."""
    return _message_like(text) and (text == b"Buf" or text.endswith(b"Error"))


_NEED = None  # more bytes are needed


class ReplyFramer:
    """Takes replies off the control port's byte stream (see the module docstring).

    ``convention`` is a belief, not a lock: it only settles the two shapes the wire cannot tell apart
    (``04 00 id xx`` for a one-byte read; ``04 00 id`` + 3 more bytes for a four-byte one) and follows every
    reply that shows its convention unambiguously. Replies with another id are skipped (those of timed-out
    requests framed by their own :class:`Expect`); anything that is no reply is dropped a byte at a time.
    """

    def __init__(self, convention: Convention | None = None) -> None:
        self.convention: Convention | None = convention
        self.buf = bytearray()
        self.dropped = 0
        self._late: dict[int, Expect] = {}

    def feed(self, data: bytes) -> None:
        self.buf += data

    def forget(self, rid: int, expect: Expect) -> None:
        """``rid`` timed out: skip its reply if it still arrives (the last 16 are remembered)."""
        self._late[rid] = expect
        while len(self._late) > 16:
            del self._late[next(iter(self._late))]

    def take(self, rid: int, expect: Expect, *, final: bool = False) -> Reply | None:
        """The reply to request ``rid``, or None until it has arrived (``final``: the wait is over, settle an
        ambiguous four-byte head as the error it then must be)."""
        buf = self.buf
        while len(buf) >= 4:
            got = buf[2]
            exp: Expect | None
            if got == rid:
                exp = expect
            elif got == PARSE_ERROR_ID:
                exp = None
            elif got in self._late:
                exp = self._late[got]
            else:
                self._drop()
                continue
            shape = self._shape(exp, final and got == rid)
            if shape is _NEED:
                return None
            kind, total, conv = shape
            if kind == "garbage":
                self._drop()
                continue
            if len(buf) < total:
                return None
            raw = bytes(buf[:total])
            if kind == "message" and not _message_like(raw[4:]):
                self._drop()
                continue
            del buf[:total]
            reply = _reply(kind, raw)
            if got not in (rid, PARSE_ERROR_ID):
                self._late.pop(got, None)
                log.debug("bitaxe-raw: skipped the late reply %s", raw.hex(" "))
                continue
            if conv is not None and conv != self.convention:
                if self.convention is not None:
                    log.warning("bitaxe-raw: reply lengths now count the %s", conv)
                self.convention = conv
            return reply
        return None

    def _drop(self) -> None:
        del self.buf[0]
        self.dropped += 1

    def _shape(self, exp: Expect | None, final: bool) -> tuple[str, int, Convention | None] | None:
        """(kind, total bytes, convention shown) of the reply at the head, None when undecidable yet."""
        buf = self.buf
        n = int.from_bytes(buf[:2], "little")
        b3 = buf[3]
        maybe_message = 5 <= n <= MAX_REPLY and b3 == MESSAGE_MARKER
        if exp is None:  # id FF: only an error
            if n == 4:
                return ("simple", 4, None)
            return ("message", n, None) if maybe_message else ("garbage", 0, None)
        k, conv = exp.size, self.convention
        if n == 4:
            if k == 1:  # a 1-byte success of the packet convention, or a simple error: same 4 bytes
                if exp.accept is not None:
                    return ("ok", 4, PACKET) if bytes([b3]) in exp.accept else ("simple", 4, None)
                return ("simple", 4, None) if conv == PAYLOAD else ("ok", 4, None)
            if k == 4 and conv != PACKET:  # a 4-byte success of the payload convention (7 bytes) or an error
                if exp.accept is not None and all(a[0] != b3 for a in exp.accept):
                    return ("simple", 4, None)
                if final and len(buf) < 7:
                    return ("simple", 4, None)
                return ("ok", 7, PAYLOAD if exp.accept is not None else None)
            return ("simple", 4, None)
        ok: tuple[str, int, Convention | None] | None = None
        if n == k + 3:
            ok = ("ok", n, PACKET)
        elif n == k and n >= 1:
            ok = ("ok", k + 3, PAYLOAD)
        if ok is not None and maybe_message:
            # data that starts with FF, or a message error of the same length: read the text to tell
            if len(buf) < n:
                return _NEED
            if _known_message(bytes(buf[4:n])):
                return ("message", n, None)
        if ok is not None:
            return ok
        return ("message", n, None) if maybe_message else ("garbage", 0, None)


def _reply(kind: str, raw: bytes) -> Reply:
    rid = raw[2]
    if kind == "simple":
        return Reply(rid, code=raw[3])
    if kind == "message":
        return Reply(rid, code=None, message=raw[4:].decode("ascii"))
    return Reply(rid, payload=raw[3:])
