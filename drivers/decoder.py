"""Incremental frame decoder over a byte stream (both directions), with drop and CRC counters.

Feed it whatever a read returned; it returns whole frames with the stream offset where each one ended, keeps
an incomplete tail for the next feed, and resynchronises on the next preamble after garbage. It never
raises on bad input. For high-rate chip->host streams see :mod:`drivers.reply_batch` (vectorised).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.frames import Frame, decode
from drivers.registers import CHIP_PREAMBLE, HOST_PREAMBLE, REPLY_LEN_ROLLING

#: Bytes kept while waiting for the rest of a frame; past this the oldest byte is dropped (>= one job frame).
MAX_PENDING = 4096


@dataclass(slots=True)
class DecoderStats:
    """Running counters since the decoder was made."""

    frames: int = 0
    dropped_bytes: int = 0
    bad_frames: int = 0  # candidate frames (a preamble) rejected for their shape or CRC
    bytes_in: int = 0


@dataclass(slots=True)
class FrameDecoder:
    """Stateful wrapper around :func:`drivers.frames.decode`.

    ``reply_len`` is 11 with version rolling on (what hosts turn on first) and 9 without.
    """

    reply_len: int = REPLY_LEN_ROLLING
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buf: bytearray = field(default_factory=bytearray)
    _offset: int = 0  # stream offset of _buf[0]

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[Frame, int]]:
        """Add bytes; return ``(frame, end_offset)`` for each whole frame, ``end_offset`` in stream bytes."""
        self.stats.bytes_in += len(data)
        buf = self._buf
        buf += data
        out: list[tuple[Frame, int]] = []
        pos = 0
        n = len(buf)
        while pos < n:
            frame, consumed = decode(buf, pos, self.reply_len)
            if consumed == 0:
                break
            if frame is None:
                self.stats.dropped_bytes += consumed
                if consumed == 1 and buf[pos : pos + 2] in (HOST_PREAMBLE, CHIP_PREAMBLE):
                    self.stats.bad_frames += 1  # a candidate frame at pos was rejected (shape or CRC)
            else:
                self.stats.frames += 1
                out.append((frame, self._offset + pos + consumed))
            pos += consumed
        if n - pos > MAX_PENDING:
            extra = n - pos - MAX_PENDING
            self.stats.dropped_bytes += extra
            pos += extra
        del buf[:pos]
        self._offset += pos
        return out

    def flush(self) -> int:
        """Drop whatever is pending (end of stream); returns the number of bytes dropped."""
        n = len(self._buf)
        self.stats.dropped_bytes += n
        self._offset += n
        self._buf.clear()
        return n
