"""The chip's own reading of register values, the job header, the nonce search and fast reply encoding.

Deliberately independent of the host driver's code (only the CRC tables come from :mod:`drivers.crc`), so
the emulator and the driver cannot validate each other's bugs. Facts from ``docs/protocol.md``.
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass
from fractions import Fraction

from drivers.crc import CRC5_INIT, CRC5_POLY, CRC5_TABLE

#: UART reference clock (Hz): baud = 25 MHz / ((BT8D + 1) * 8) (docs/protocol.md, register 0x28).
UART_CLOCK_HZ = 25_000_000
#: PLL reference clock (Hz) (docs/protocol.md, PLL0).
PLL_REF_HZ = 25_000_000
#: Diff-1 target (Bitcoin pool difficulty 1): 0xFFFF * 2^208.
DIFF1_TARGET = 0xFFFF << 208
#: Default difficulty scale: a reported nonce's true share difficulty is >= ticket difficulty * scale.
#: Emulating mining costs (hash rate * scale) hashes/s: 433.6 GH/s * 2^-28 = 1.6 kH/s per chip at 485 MHz,
#: so 128 chips run in real time on one core, and a difficulty-1 share costs ~16 double-SHA-256 hashes,
#: which puts one 3.125 Mbaud link's worth of replies (28,400/s) within reach of one core.
DEFAULT_DIFFICULTY_SCALE = 2.0**-28
#: Low nonce bits a core searches; bits 31-25 carry the core id, 24-17 the chip address (ESP-Miner reading).
NONCE_SEARCH_BITS = 17


def pll_frequency_hz(value: int) -> float:
    """Hash clock (Hz) from PLL0: ``25 MHz * fb_div / (refdiv * postdiv1 * postdiv2)``; 0 if invalid."""
    fb_div = (value >> 16) & 0xFF
    refdiv = (value >> 8) & 0xFF
    post1 = ((value >> 4) & 0x7) + 1
    post2 = (value & 0x7) + 1
    if fb_div == 0 or refdiv == 0:
        return 0.0
    return PLL_REF_HZ * fb_div / (refdiv * post1 * post2)


def _bitrev8(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


def ticket_difficulty(mask: int) -> int:
    """Reported-nonce difficulty from a ticket mask: bit-reverse each byte, count the low ones, 2^count."""
    raw = bytes(_bitrev8(b) for b in mask.to_bytes(4, "big"))
    ones = 0
    value = int.from_bytes(raw, "big")
    while value & 1:
        ones += 1
        value >>= 1
    return 1 << ones


def uart_baud(value: int) -> float:
    """UART baud from the fast-UART register (BT8D in bits 15-8)."""
    bt8d = (value >> 8) & 0xFF
    return UART_CLOCK_HZ / ((bt8d + 1) * 8)


def version_mask(value: int) -> int:
    """Rollable version bits from register 0xA4 (0 while bit 31 is clear)."""
    if not value & 0x80000000:
        return 0
    return (value & 0xFFFF) << 13


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the chip reads its 88-byte frame: header fields in header byte order."""

    job_id: int
    version: int
    prev_hash: bytes  # 32 bytes, header order
    merkle_root: bytes  # 32 bytes, header order
    ntime: bytes  # 4 bytes as in the header
    nbits: bytes  # 4 bytes as in the header

    @classmethod
    def from_frame(cls, raw: bytes) -> Job:
        """Parse a whole (CRC-checked) 88-byte job frame."""

        def unreverse(h: bytes) -> bytes:
            return b"".join(h[i : i + 4] for i in range(28, -4, -4))

        (version,) = struct.unpack_from("<I", raw, 82)
        return cls(
            job_id=raw[4],
            version=version,
            prev_hash=unreverse(raw[50:82]),
            merkle_root=unreverse(raw[18:50]),
            ntime=raw[14:18],
            nbits=raw[10:14],
        )

    def header_prefix(self, rolled_version: int) -> bytes:
        """Header bytes 0..75 for a rolled version (the 4 nonce bytes follow)."""
        return struct.pack("<I", rolled_version) + self.prev_hash + self.merkle_root + self.ntime + self.nbits


def share_threshold(ticket_diff: float, scale: float) -> int:
    """Largest header hash (little-endian integer) with share difficulty >= ``ticket_diff * scale``."""
    need = Fraction(ticket_diff) * Fraction(scale)
    return int(DIFF1_TARGET * need.denominator // need.numerator)


class _Cursor:
    """One big core's scan: its rolled version, midstate and the next low nonce bits to try."""

    __slots__ = ("addr", "end", "field", "high", "job", "mid", "pos", "vmask")

    def __init__(self, job: Job, vmask: int, addr: int, core: int, rng: random.Random) -> None:
        self.job = job
        self.vmask = vmask
        self.addr = addr
        self.high = (core << 25) | ((addr & 0xFF) << 17)
        self.roll(rng)

    def roll(self, rng: random.Random) -> None:
        """Take a new version field and a random start (the previous range is exhausted)."""
        self.field = rng.getrandbits(16) & (self.vmask >> 13)
        # SHA-256 state after the 76 fixed header bytes (one block compressed, 12 bytes buffered).
        self.mid = hashlib.sha256(self.job.header_prefix(self.job.version | (self.field << 13)))
        self.pos = rng.getrandbits(NONCE_SEARCH_BITS)
        self.end = self.pos + (1 << NONCE_SEARCH_BITS)


class NonceSearcher:
    """Finds nonces whose double-SHA-256 meets a threshold, scanning like a chip: each big core walks its
    low nonce bits sequentially under one rolled version (midstate computed once), rolling the version
    when its range is exhausted; the core reporting each nonce is drawn uniformly."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._cursors: dict[int, _Cursor] = {}
        self.hashes = 0

    def find(self, job: Job, vmask: int, addr: int, threshold: int, want_valid: bool) -> tuple[int, int, int]:
        """``(nonce, version_field, core)`` meeting (or, for ``want_valid=False``, failing) ``threshold``.

        Nonce bits 31-25 = core (0..111), 24-17 = chip address, 16-0 searched.
        """
        rng = self._rng
        core = rng.randrange(112)
        cur = self._cursors.get(core)
        if cur is None or cur.job is not job or cur.vmask != vmask or cur.addr != addr:
            cur = self._cursors[core] = _Cursor(job, vmask, addr, core, rng)
        sha = hashlib.sha256
        from_bytes = int.from_bytes
        low_mask = (1 << NONCE_SEARCH_BITS) - 1
        while not want_valid:  # an error lands anywhere in the range; the scan position is untouched
            nonce = cur.high | rng.getrandbits(NONCE_SEARCH_BITS)
            h = cur.mid.copy()
            h.update(nonce.to_bytes(4, "big"))
            self.hashes += 1
            if from_bytes(sha(h.digest()).digest(), "little") > threshold:
                return nonce, cur.field, core
        while True:
            mid_copy, high = cur.mid.copy, cur.high
            pos = cur.pos
            for i in range(pos, cur.end):
                nonce = high | (i & low_mask)
                h = mid_copy()
                h.update(nonce.to_bytes(4, "big"))
                if from_bytes(sha(h.digest()).digest(), "little") <= threshold:
                    self.hashes += i + 1 - pos
                    cur.pos = i + 1
                    return nonce, cur.field, core
            self.hashes += cur.end - pos
            cur.roll(rng)


def _crc5_reply_table() -> list[int]:
    """CRC5 state after folding 3 top bits of the last byte, indexed by ``(reg << 3) | top3``."""
    table = []
    for idx in range(256):
        crc = idx >> 3
        bits = idx & 0x7
        for k in range(3):
            bit = (bits >> (2 - k)) & 1
            fb = ((crc >> 4) & 1) ^ bit
            crc = (crc << 1) & 0x1F
            if fb:
                crc ^= CRC5_POLY
        table.append(crc)
    return table


_TAIL3 = _crc5_reply_table()


def encode_reply(d: bytes, b6: int, b7: int, version_bits: int, is_nonce: bool, reply_len: int) -> bytes:
    """A chip reply ``AA 55 d0..d3 b6 b7 [v0 v1] last`` with its CRC5 (table-driven, no codec objects)."""
    body = d + bytes((b6, b7))
    if reply_len == 11:
        body += version_bits.to_bytes(2, "big")
    reg = CRC5_INIT << 3
    table = CRC5_TABLE
    for b in body:
        reg = table[reg ^ b]
    top = 0x80 if is_nonce else 0x00
    crc = _TAIL3[reg | (top >> 5)]
    return b"\xaa\x55" + body + bytes((top | crc,))
