"""BM1366 frames as small frozen dataclasses, with encoders and a pure one-frame decoder.

``decode(buffer, pos) -> (frame | None, consumed)``: ``consumed == 0`` means "need more bytes"; a positive
``consumed`` with ``None`` means that many bytes were skipped (garbage, or a candidate frame whose CRC or
shape was wrong). Nothing here raises on bad input; :class:`InvalidFrame` is raised only by the strict
:func:`parse_exact` used on literal bytes.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from drivers.crc import crc5, crc16_ccitt_false, reply_crc5
from drivers.registers import (
    BROADCAST,
    CHIP_PREAMBLE,
    HOST_PREAMBLE,
    JOB_FRAME_LEN,
    JOB_HEADER,
    JOB_LENGTH_BYTES,
    REPLY_LEN_PLAIN,
    REPLY_LEN_ROLLING,
    TYPE_CMD,
    Cmd,
)


class InvalidFrame(ValueError):
    """A frame that does not match its expected bytes; carries expected vs received hex."""

    def __init__(self, reason: str, expected: bytes | None = None, received: bytes | None = None) -> None:
        self.reason = reason
        self.expected = expected.hex(" ") if expected is not None else None
        self.received = received.hex(" ") if received is not None else None
        detail = f"{reason}"
        if self.expected is not None or self.received is not None:
            detail += f" (expected {self.expected}, received {self.received})"
        super().__init__(detail)


def word_reverse(h: bytes) -> bytes:
    """Reverse the order of the 4-byte words of a 32-byte hash (bytes inside each word unchanged)."""
    if len(h) != 32:
        raise ValueError(f"hash must be 32 bytes, got {len(h)}")
    return b"".join(h[i : i + 4] for i in range(28, -4, -4))


@dataclass(frozen=True, slots=True)
class CommandFrame:
    """Host -> chip command. ``value`` is set only for WRITE_REGISTER (32-bit, sent MSB first)."""

    cmd: Cmd
    broadcast: bool = False
    chip_addr: int = 0
    reg: int = 0
    value: int | None = None

    @property
    def header(self) -> int:
        return TYPE_CMD | (BROADCAST if self.broadcast else 0) | int(self.cmd)

    def encode(self) -> bytes:
        if not (0 <= self.chip_addr <= 0xFF and 0 <= self.reg <= 0xFF):
            raise ValueError(f"chip_addr/reg must be bytes, got {self.chip_addr}, {self.reg}")
        if self.cmd == Cmd.WRITE_REGISTER:
            if self.value is None or not 0 <= self.value <= 0xFFFFFFFF:
                raise ValueError(f"write needs a 32-bit value, got {self.value!r}")
            data = bytes([self.chip_addr, self.reg]) + self.value.to_bytes(4, "big")
        else:
            data = bytes([self.chip_addr, self.reg])
        body = bytes([self.header, len(data) + 3]) + data
        return HOST_PREAMBLE + body + bytes([crc5(body)])


def write_reg(reg: int, value: int, chip_addr: int = 0, broadcast: bool = True) -> CommandFrame:
    """Write ``value`` to ``reg`` on one chip, or on all when ``broadcast``."""
    return CommandFrame(Cmd.WRITE_REGISTER, broadcast, chip_addr, reg, value)


def read_reg(reg: int, chip_addr: int = 0, broadcast: bool = True) -> CommandFrame:
    """Read ``reg`` from one chip, or from all when ``broadcast``."""
    return CommandFrame(Cmd.READ_REGISTER, broadcast, chip_addr, reg)


def set_address(chip_addr: int) -> CommandFrame:
    """Give the first inactive chip on the chain the address ``chip_addr``."""
    return CommandFrame(Cmd.SET_ADDRESS, False, chip_addr, 0)


def chain_inactive() -> CommandFrame:
    """Put every chip in the chain into the inactive (addressable) state."""
    return CommandFrame(Cmd.CHAIN_INACTIVE, True, 0, 0)


@dataclass(frozen=True, slots=True)
class JobFrame:
    """The 88-byte job. Hashes in header byte order (as in the 80-byte block header)."""

    job_id: int
    prev_block_hash: bytes
    merkle_root: bytes
    version: int
    nbits: int
    ntime: int
    starting_nonce: int = 0
    num_midstates: int = 1
    length_byte: int = 0x56

    def encode(self) -> bytes:
        if not 0 <= self.job_id <= 0xFF:
            raise ValueError(f"job_id must be a byte, got {self.job_id}")
        body = (
            bytes([JOB_HEADER, self.length_byte, self.job_id, self.num_midstates])
            + struct.pack("<III", self.starting_nonce, self.nbits, self.ntime)
            + word_reverse(self.merkle_root)
            + word_reverse(self.prev_block_hash)
            + struct.pack("<I", self.version)
        )
        return HOST_PREAMBLE + body + crc16_ccitt_false(body).to_bytes(2, "big")

    def header_prefix(self, rolled_version: int) -> bytes:
        """The first 76 bytes of the block header for ``rolled_version`` (nonce bytes follow)."""
        return (
            struct.pack("<I", rolled_version)
            + self.prev_block_hash
            + self.merkle_root
            + struct.pack("<II", self.ntime, self.nbits)
        )


@dataclass(frozen=True, slots=True)
class NonceReply:
    """Chip -> host nonce. ``nonce`` is d0..d3 read big-endian (d0..d3 are header bytes 76..79)."""

    nonce: int
    b6: int
    b7: int
    version_bits: int = 0

    @property
    def job_id(self) -> int:
        return self.b7 & 0xF8

    @property
    def small_core(self) -> int:
        return self.b7 & 0x07

    @property
    def nonce_bytes(self) -> bytes:
        return self.nonce.to_bytes(4, "big")

    def encode(self, reply_len: int = REPLY_LEN_ROLLING) -> bytes:
        return _encode_reply(self.nonce_bytes, self.b6, self.b7, self.version_bits, True, reply_len)


@dataclass(frozen=True, slots=True)
class RegisterReply:
    """Chip -> host register value."""

    value: int
    chip_addr: int
    reg: int

    def encode(self, reply_len: int = REPLY_LEN_ROLLING) -> bytes:
        return _encode_reply(self.value.to_bytes(4, "big"), self.chip_addr, self.reg, 0, False, reply_len)


Frame = CommandFrame | JobFrame | NonceReply | RegisterReply


def _encode_reply(d: bytes, b6: int, b7: int, version: int, is_nonce: bool, reply_len: int) -> bytes:
    if reply_len not in (REPLY_LEN_ROLLING, REPLY_LEN_PLAIN):
        raise ValueError(f"reply length must be 9 or 11, got {reply_len}")
    body = d + bytes([b6 & 0xFF, b7 & 0xFF])
    if reply_len == REPLY_LEN_ROLLING:
        body += (version & 0xFFFF).to_bytes(2, "big")
    top = 0x80 if is_nonce else 0x00
    crc = reply_crc5(body + bytes([top]))
    return CHIP_PREAMBLE + body + bytes([top | crc])


def _decode_reply(raw: bytes) -> NonceReply | RegisterReply:
    last = raw[-1]
    if last & 0x80:
        version = int.from_bytes(raw[8:10], "big") if len(raw) == REPLY_LEN_ROLLING else 0
        return NonceReply(int.from_bytes(raw[2:6], "big"), raw[6], raw[7], version)
    return RegisterReply(int.from_bytes(raw[2:6], "big"), raw[6], raw[7])


def _decode_command(raw: bytes) -> CommandFrame:
    header = raw[2]
    cmd = Cmd(header & 0x03)
    value = int.from_bytes(raw[6:10], "big") if cmd == Cmd.WRITE_REGISTER else None
    return CommandFrame(cmd, bool(header & BROADCAST), raw[4], raw[5], value)


def _decode_job(raw: bytes) -> JobFrame:
    starting, nbits, ntime = struct.unpack_from("<III", raw, 6)
    (version,) = struct.unpack_from("<I", raw, 82)
    return JobFrame(
        job_id=raw[4],
        prev_block_hash=word_reverse(raw[50:82]),
        merkle_root=word_reverse(raw[18:50]),
        version=version,
        nbits=nbits,
        ntime=ntime,
        starting_nonce=starting,
        num_midstates=raw[5],
        length_byte=raw[3],
    )


def _command_len(header: int, length: int) -> int:
    """Total bytes of a host frame starting with ``header, length``; 0 when the shape is impossible."""
    if header == JOB_HEADER:
        return JOB_FRAME_LEN if length in JOB_LENGTH_BYTES else 0
    if header & 0xE0 != TYPE_CMD or header & 0x0C:
        return 0
    cmd = header & 0x03
    expected = 9 if cmd == Cmd.WRITE_REGISTER else 5
    return 2 + length if length == expected else 0


#: Either preamble; one forward scan that stops at the first hit (two ``find`` calls would each scan ahead to
#: the next occurrence of their own preamble, quadratic on a one-direction capture).
_PREAMBLE_RE = re.compile(re.escape(HOST_PREAMBLE) + b"|" + re.escape(CHIP_PREAMBLE))


def _next_preamble(buf: bytes | bytearray, pos: int) -> int:
    """Index of the next ``55 AA`` or ``AA 55`` at or after ``pos``; -1 when there is none."""
    m = _PREAMBLE_RE.search(buf, pos)
    return m.start() if m else -1


def check_frame(raw: bytes, reply_len: int = REPLY_LEN_ROLLING) -> str | None:
    """Reason a complete candidate frame is invalid, or None when its shape and CRC are right."""
    if raw[:2] == CHIP_PREAMBLE:
        if len(raw) != reply_len:
            return f"reply length {len(raw)} != {reply_len}"
        return None if crc5(raw[2:]) == 0 else "reply CRC5 mismatch"
    if raw[:2] == HOST_PREAMBLE:
        if len(raw) < 4:
            return "truncated host frame"
        if raw[2] == JOB_HEADER:
            if len(raw) != JOB_FRAME_LEN:
                return f"job length {len(raw)} != {JOB_FRAME_LEN}"
            crc_ok = crc16_ccitt_false(raw[2:-2]) == int.from_bytes(raw[-2:], "big")
            return None if crc_ok else "job CRC16 mismatch"
        n = _command_len(raw[2], raw[3])
        if n == 0 or n != len(raw):
            return f"bad command header {raw[2]:02x} / length {raw[3]:02x}"
        return None if crc5(raw[2:-1]) == raw[-1] else "command CRC5 mismatch"
    return "no preamble"


def frame_length(buf: bytes | bytearray, pos: int, reply_len: int = REPLY_LEN_ROLLING) -> int:
    """Length of the frame whose preamble is at ``pos``: >0 known, 0 need more bytes, -1 impossible shape."""
    if buf[pos] == 0xAA:
        return reply_len
    if len(buf) - pos < 4:
        return 0
    n = _command_len(buf[pos + 2], buf[pos + 3])
    return n if n else -1


def decode(
    buf: bytes | bytearray, pos: int = 0, reply_len: int = REPLY_LEN_ROLLING
) -> tuple[Frame | None, int]:
    """Decode one frame at ``buf[pos:]``.

    Returns ``(frame, consumed)``. ``(None, 0)``: need more bytes. ``(None, k > 0)``: ``k`` bytes were skipped
    (leading garbage, or one byte of a candidate frame with a wrong shape or CRC, to resynchronise on the next
    preamble). Never raises on bad input.
    """
    start = _next_preamble(buf, pos)
    if start < 0:
        # Keep a trailing first preamble byte: it may start a frame in the next read.
        end = len(buf) - 1 if len(buf) > pos and buf[-1] in (0x55, 0xAA) else len(buf)
        return None, end - pos
    if start > pos:
        return None, start - pos
    n = frame_length(buf, pos, reply_len)
    if n == 0 or (n > 0 and len(buf) - pos < n):
        return None, 0
    if n < 0:
        return None, 1
    raw = bytes(buf[pos : pos + n])
    if check_frame(raw, reply_len) is not None:
        return None, 1
    return _frame_from_raw(raw), n


def _frame_from_raw(raw: bytes) -> Frame:
    if raw[0] == 0xAA:
        return _decode_reply(raw)
    if raw[2] == JOB_HEADER:
        return _decode_job(raw)
    return _decode_command(raw)


def decode_unchecked(raw: bytes) -> Frame:
    """Fields of one whole frame whose shape is right, without checking its CRC (for protocol analysers).

    ``raw`` starts with a preamble and has the frame's full length (see :func:`frame_length`).
    """
    return _frame_from_raw(raw)


def parse_exact(raw: bytes, reply_len: int | None = None) -> Frame:
    """Decode exactly one whole frame or raise :class:`InvalidFrame` saying why (for literal bytes)."""
    if reply_len is None:
        reply_len = len(raw) if raw[:2] == CHIP_PREAMBLE else REPLY_LEN_ROLLING
    reason = check_frame(raw, reply_len)
    if reason is not None:
        expected = None
        if raw[:2] == HOST_PREAMBLE and len(raw) > 4 and raw[2] != JOB_HEADER:
            expected = raw[:-1] + bytes([crc5(raw[2:-1])])
        raise InvalidFrame(reason, expected, raw)
    return _frame_from_raw(raw)
